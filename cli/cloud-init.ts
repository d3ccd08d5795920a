// `skiff node cloud-init`: user-data that turns a fresh Debian 12 machine
// into a Skiff node joining a cluster. Debian 12's nodejs is 18, so Node.js
// comes from nodejs.org's release tarball, pinned by version and checked by
// its sha256 (written here, not fetched beside it); nats-server is Debian's;
// Skiff is cloned from --source and built by `npm run setup`. A systemd unit
// runs `skiff up --join` with the token from a 0600 environment file, so the
// token is on no command line and in no runcmd.

import { execFileSync } from 'node:child_process';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { Document, type YAMLSeq } from 'yaml';
import { parseFlags, UsageError, type FlagSpec } from '../bus/flags';
import { DEFAULT_APP_UIDS, DEFAULT_BUILD_UIDS } from '../bus/uids';

/** Node.js 20 LTS, with the sha256 of each build from its SHASUMS256.txt. Change all three together. */
export const NODE_RELEASE = {
  version: '20.18.0',
  sha256: {
    amd64: '4543670b589593f8fa5f106111fd5139081da42bb165a9239f05195e405f240a',
    arm64: 'a9ce85675ba33f00527f6234d90000946c0936fb4fca605f1891bb5f4fe6fb0a',
  },
} as const;

export const NODE_ROLES = ['router', 'controller', 'stager', 'dea', 'health', 'services'] as const;

export const INSTALL_DIR = '/opt/skiff';
export const JOIN_ENV_FILE = '/etc/skiff/join.env';
export const UNIT_FILE = '/etc/systemd/system/skiff.service';
export const INSTALL_SCRIPT = '/usr/local/lib/skiff/install.sh';
export const METADATA_GUARD = '/etc/skiff/metadata-guard.nft';

export const CLOUD_INIT_FLAGS: readonly FlagSpec[] = [
  { name: 'join', kind: 'string', secret: true, env: 'SKIFF_UP_JOIN', help: 'the join token (`skiff up` prints it); safer from $SKIFF_UP_JOIN than on this command line' },
  { name: 'roles', kind: 'string', help: `roles of the new node, comma-separated: ${NODE_ROLES.join(', ')}` },
  { name: 'advertise', kind: 'string', help: "address the node's roles are reached at, passed to `skiff up --advertise`", defaultText: "skiff up's choice" },
  { name: 'nats-server', kind: 'boolean', help: 'the node also runs a nats-server clustered with the others (`skiff up --nats-server`)' },
  { name: 'source', kind: 'string', help: 'git URL the node clones Skiff from', defaultText: "this checkout's remote origin" },
  { name: 'ref', kind: 'string', help: 'branch or tag to clone', defaultText: "the remote's default branch" },
];

export interface CloudInitOptions {
  token: string;
  roles: string[];
  advertise?: string;
  natsServer: boolean;
  source: string;
  ref?: string;
}

// Characters of base64, base64url and JWTs: nothing a shell, YAML or systemd's EnvironmentFile would read as syntax.
const TOKEN = /^[A-Za-z0-9._~+/=:-]+$/;
const REF = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;

export function parseCloudInitOptions(argv: string[], env: NodeJS.ProcessEnv, checkoutRemote: () => string | undefined): CloudInitOptions & { help: boolean } {
  const { values, positionals } = parseFlags(argv, CLOUD_INIT_FLAGS, 'SKIFF_NODE', env);
  if (values.help) return { help: true, token: '', roles: [], natsServer: false, source: '' };
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const token = values.join as string | undefined;
  if (token === undefined) throw new UsageError('missing --join TOKEN (the token `skiff up` printed on the first node), or set SKIFF_UP_JOIN');
  if (!TOKEN.test(token)) throw new UsageError('the join token has characters no Skiff token has (whitespace, quotes, $ or the like): copy it again');
  const rolesText = values.roles as string | undefined;
  if (rolesText === undefined) throw new UsageError(`missing --roles, e.g. --roles dea or --roles dea,router (roles: ${NODE_ROLES.join(', ')})`);
  const roles = rolesText.split(',').map((r) => r.trim()).filter((r) => r !== '');
  if (roles.length === 0) throw new UsageError('--roles names no role');
  for (const role of roles) {
    if (!(NODE_ROLES as readonly string[]).includes(role)) throw new UsageError(`unknown role ${JSON.stringify(role)} in --roles (roles: ${NODE_ROLES.join(', ')})`);
  }
  const advertise = values.advertise as string | undefined;
  if (advertise !== undefined && isIP(advertise) === 0) throw new UsageError(`--advertise must be an IP address, got ${JSON.stringify(advertise)}`);
  const ref = values.ref as string | undefined;
  if (ref !== undefined && (!REF.test(ref) || ref.includes('..'))) throw new UsageError(`--ref must be a branch or tag name, got ${JSON.stringify(ref)}`);
  return {
    help: false,
    token,
    roles: [...new Set(roles)],
    advertise,
    natsServer: values['nats-server'] === true,
    source: checkSource(values.source as string | undefined, checkoutRemote),
    ref,
  };
}

function checkSource(given: string | undefined, checkoutRemote: () => string | undefined): string {
  const source = given ?? checkoutRemote();
  const origin = given !== undefined ? '--source' : "this checkout's remote origin";
  if (source === undefined) throw new UsageError("this checkout has no git remote origin: pass --source URL, where the new node clones Skiff from");
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    // scp-like `git@host:path`: the form git itself takes for ssh.
    if (/^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$/.test(source)) return source;
    throw new UsageError(`${origin} must be a URL a new machine can clone from (https://, ssh:// or git@host:path), got ${JSON.stringify(source)}`);
  }
  if (!['https:', 'http:', 'ssh:', 'git:'].includes(url.protocol)) {
    throw new UsageError(`${origin} must be a URL a new machine can clone from (https://, ssh:// or git@host:path), got ${JSON.stringify(source)}`);
  }
  if (url.password !== '') throw new UsageError(`${origin} carries a password: user-data is readable on the new machine; use a URL without one`);
  if (/[\s'"\\$`]/.test(source)) throw new UsageError(`${origin} has characters a URL should not have: ${JSON.stringify(source)}`);
  return source;
}

/** `git remote get-url origin` of the checkout this CLI runs from. */
export function checkoutRemote(root = join(__dirname, '..', '..')): string | undefined {
  try {
    return execFileSync('git', ['-C', root, 'remote', 'get-url', 'origin'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The `skiff up` command line of the unit: every argument but the token, which it reads from SKIFF_UP_JOIN. */
export function upCommand(options: CloudInitOptions): string[] {
  return [
    join(INSTALL_DIR, 'bin', 'skiff'), 'up', '--roles', options.roles.join(','),
    ...(options.advertise !== undefined ? ['--advertise', options.advertise] : []),
    ...(options.natsServer ? ['--nats-server'] : []),
  ];
}

export function installScript(options: CloudInitOptions): string {
  const { version, sha256 } = NODE_RELEASE;
  const clone = ['git', 'clone', '--depth', '1', ...(options.ref !== undefined ? ['--branch', options.ref] : []), options.source, INSTALL_DIR];
  return `#!/bin/sh
# Written by \`skiff node cloud-init\`: Node.js ${version} and Skiff for a new node.
set -eu
case "$(dpkg --print-architecture)" in
  amd64) arch=x64; sum=${sha256.amd64} ;;
  arm64) arch=arm64; sum=${sha256.arm64} ;;
  *) echo "skiff: no Node.js ${version} build is pinned for $(dpkg --print-architecture)" >&2; exit 1 ;;
esac
dist="node-v${version}-linux-$arch"
tmp="$(mktemp -d)"
curl -fsSL --retry 5 -o "$tmp/$dist.tar.xz" "https://nodejs.org/dist/v${version}/$dist.tar.xz"
echo "$sum  $tmp/$dist.tar.xz" | sha256sum -c -
mkdir -p /usr/local/lib/nodejs
tar -xJf "$tmp/$dist.tar.xz" -C /usr/local/lib/nodejs
rm -rf "$tmp"
for bin in node npm npx; do ln -sf "/usr/local/lib/nodejs/$dist/bin/$bin" "/usr/local/bin/$bin"; done
export PATH="/usr/local/bin:$PATH"
rm -rf ${INSTALL_DIR}
${clone.map(shellWord).join(' ')}
cd ${INSTALL_DIR}
npm run setup
`;
}

export function unitFile(options: CloudInitOptions): string {
  return `[Unit]
Description=Skiff node (${options.roles.join(', ')})
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
# SKIFF_UP_JOIN: the join token, kept in a root-only file rather than on a command line.
EnvironmentFile=${JOIN_ENV_FILE}
Environment=HOME=/root
# Before any app runs: apps may not fetch this user-data (the token) from the cloud's metadata service.
ExecStartPre=/usr/sbin/nft -f ${METADATA_GUARD}
ExecStart=${upCommand(options).join(' ')}
Restart=on-failure
RestartSec=5
# skiff up stops its roles and their apps itself, in order, within 35 s: signal it alone.
KillMode=mixed
TimeoutStopSec=60

[Install]
WantedBy=multi-user.target
`;
}

/** The user-data, `#cloud-config` first. */
export function cloudConfig(options: CloudInitOptions): string {
  const config = {
    package_update: true,
    packages: ['ca-certificates', 'curl', 'xz-utils', 'git', 'nats-server', 'nftables', 'python3', 'python3-pip'],
    write_files: [
      { path: JOIN_ENV_FILE, owner: 'root:root', permissions: '0600', content: `SKIFF_UP_JOIN=${options.token}\n` },
      { path: INSTALL_SCRIPT, owner: 'root:root', permissions: '0755', content: installScript(options) },
      { path: METADATA_GUARD, owner: 'root:root', permissions: '0644', content: metadataGuard() },
      { path: UNIT_FILE, owner: 'root:root', permissions: '0644', content: unitFile(options) },
    ],
    runcmd: [
      // Debian's package starts its own nats-server on 4222; Skiff runs the one it configures.
      ['systemctl', 'disable', '--now', 'nats-server.service'],
      [INSTALL_SCRIPT],
      ['systemctl', 'daemon-reload'],
      ['systemctl', 'enable', '--now', 'skiff.service'],
    ],
  };
  const doc = new Document(config);
  // runcmd entries as `[systemctl, daemon-reload]`: one command per line, as people write them.
  for (const item of (doc.get('runcmd', true) as YAMLSeq).items) (item as YAMLSeq).flow = true;
  return `#cloud-config\n${doc.toString({ lineWidth: 0 })}`;
}

/**
 * nftables rules that keep the uids of apps and builds (and nobody, for
 * starts without a uid) from the metadata service: on most clouds any local
 * process can read the instance's user-data there, and this user-data holds
 * the join token. The table is replaced whole, so the unit may load it at
 * every start.
 */
export function metadataGuard(): string {
  const uids = `${Math.min(DEFAULT_APP_UIDS.first, DEFAULT_BUILD_UIDS.first)}-${Math.max(DEFAULT_APP_UIDS.last, DEFAULT_BUILD_UIDS.last)}`;
  return `table inet skiff_metadata_guard
delete table inet skiff_metadata_guard
table inet skiff_metadata_guard {
  chain output {
    type filter hook output priority 0; policy accept;
    meta skuid { ${uids}, 65534 } ip daddr 169.254.169.254 reject
    meta skuid { ${uids}, 65534 } ip6 daddr fd00:ec2::254 reject
  }
}
`;
}

function shellWord(word: string): string {
  return /^[A-Za-z0-9._/:@=+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
