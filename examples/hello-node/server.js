// A Skiff app listens on the port the DEA gives it in $PORT (VCAP_APP_PORT in
// Cloud Foundry v1), and nothing else.
const http = require('node:http');

const port = Number(process.env.PORT || process.env.VCAP_APP_PORT || 3000);
const app = (() => {
  try {
    return JSON.parse(process.env.VCAP_APPLICATION || '{}');
  } catch {
    return {};
  }
})();

http
  .createServer((req, res) => {
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.end(`Hello from ${app.name || 'hello-node'} (instance ${app.instance_index ?? 0}) at ${req.url}\n`);
  })
  .listen(port, () => console.log(`hello-node listening on ${port}`));
