// autocannon (programmatic API), in this process. Single-threaded JS: on a
// small machine it may be the bottleneck; loader CPU is recorded to show it.

import autocannon = require('autocannon');
import { BENCH_HOST, requestBody } from './cases';
import { LatencyHistogram } from './latency';
import type { LoadSpec, Loader, Measurement } from './loader';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const VERSION: string = (require('autocannon/package.json') as { version: string }).version;

export function autocannonLoader(): Loader {
  return {
    name: 'autocannon',
    version: VERSION,
    run,
  };
}

function run(spec: LoadSpec): Promise<Measurement> {
  const c = spec.benchCase;
  const body = requestBody(c);
  const opts: autocannon.Options = {
    url: `http://127.0.0.1:${spec.port}${c.path}`,
    connections: c.connections,
    duration: spec.durationS,
    timeout: 10,
    method: c.method,
    headers: {
      host: BENCH_HOST,
      ...(body ? { 'content-type': 'application/octet-stream' } : {}),
    },
    ...(body ? { body } : {}),
    ...(c.expectBody !== undefined ? { expectBody: c.expectBody } : {}),
  };
  const hist = new LatencyHistogram();
  const cpu0 = process.cpuUsage();
  return new Promise<Measurement>((resolve, reject) => {
    let settled = false;
    // Bounded: autocannon stops itself after `duration`; this is the backstop.
    const guard = setTimeout(() => {
      if (settled) return;
      settled = true;
      instance.stop();
      reject(new Error(`autocannon did not finish within ${spec.durationS + 30} s`));
    }, (spec.durationS + 30) * 1000);
    const instance = autocannon(opts, (err, result) => {
      clearTimeout(guard);
      if (settled) return;
      settled = true;
      if (err) {
        reject(err);
        return;
      }
      const cpu = process.cpuUsage(cpu0);
      const loaderCpuS = (cpu.user + cpu.system) / 1e6;
      const durationS = result.duration > 0 ? result.duration : spec.durationS;
      const requests = result.requests.total;
      resolve({
        requests,
        durationS,
        rps: requests / durationS,
        p50ms: hist.percentile(50),
        p99ms: hist.percentile(99),
        non2xx: result.non2xx,
        errors: result.errors + result.mismatches,
        detail: {
          autocannon: {
            requestsSent: result.requests.sent,
            errors: result.errors,
            timeouts: result.timeouts,
            mismatches: result.mismatches,
            resets: result.resets,
            statusCodes: result.statusCodeStats,
            latencyMsP50: result.latency.p50,
            latencyMsP99: result.latency.p99,
            latencyMsMean: result.latency.mean,
            bytesPerSecMean: result.throughput.mean,
          },
          loaderCpuS,
          loaderCpuShareOfOneCore: loaderCpuS / durationS,
        },
      });
    });
    // Our own finer-grained latency histogram (2xx only, as autocannon's).
    instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
      if (statusCode >= 200 && statusCode < 300) hist.record(responseTimeMs);
    });
  });
}
