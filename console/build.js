#!/usr/bin/env node
// Builds the web console (preact + uPlot) into dist/console/, which the
// controller serves at /console/. Run by `npm run build` / `prepare` (so
// `npm ci` and `npm run setup` build it) and by `npm run test:browser`.
// Plain JavaScript: it runs before anything is compiled.
'use strict';
const { copyFileSync, mkdirSync, rmSync } = require('node:fs');
const { join } = require('node:path');
const esbuild = require('esbuild');

const root = join(__dirname, '..');
const out = join(root, 'dist', 'console');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
esbuild.buildSync({
  entryPoints: [join(__dirname, 'src', 'main.tsx')],
  bundle: true,
  minify: true,
  sourcemap: true,
  format: 'iife',
  target: 'es2020',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outfile: join(out, 'app.js'),
  logLevel: 'warning',
});
copyFileSync(join(__dirname, 'src', 'index.html'), join(out, 'index.html'));
copyFileSync(join(__dirname, 'src', 'style.css'), join(out, 'style.css'));
copyFileSync(require.resolve('uplot/dist/uPlot.min.css'), join(out, 'uplot.css'));
console.log(`console: built into ${out}`);
