// A Skiff app listens on the port the DEA gives it in $PORT (VCAP_APP_PORT in
// Cloud Foundry v1), and nothing else. It says which instance answered, so
// that `skiff scale hello-node --instances 3` shows the router spreading the
// requests.
const http = require('node:http');

const port = Number(process.env.PORT || process.env.VCAP_APP_PORT || 3000);

function instanceIndex() {
  try {
    const app = JSON.parse(process.env.VCAP_APPLICATION || '{}');
    if (Number.isInteger(app.instance_index)) return app.instance_index;
  } catch {
    // not JSON: fall back below
  }
  return process.env.CF_INSTANCE_INDEX || '0';
}

const index = instanceIndex();

const server = http
  .createServer((req, res) => {
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.end(`Hello from hello-node, instance ${index}\n`);
  })
  .listen(port, () => console.log(`hello-node instance ${index} listening on ${port}`));

process.on('SIGTERM', () => server.close(() => process.exit(0)));
