// A small HTTP client for the worker's sidecar ($FIREBREAK_SIDECAR): keep-alive
// connections, Node's own http module, no dependencies.
import http from 'node:http';

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export class Sidecar {
  readonly url: URL;
  private readonly agent: http.Agent;

  constructor(url = process.env.FIREBREAK_SIDECAR ?? 'http://127.0.0.1:8081') {
    this.url = new URL(url);
    if (this.url.protocol !== 'http:') throw new Error(`FIREBREAK_SIDECAR must be http://host:port, not ${url}`);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  }

  request(method: string, path: string, body: string | Buffer | undefined,
          headers: Record<string, string>, timeoutMs: number): Promise<RawAnswer> {
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: this.url.hostname, port: this.url.port || 80, method, path, agent: this.agent,
        headers: body === undefined ? headers : { ...headers, 'Content-Length': Buffer.byteLength(body) },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const out: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) out[k] = Array.isArray(v) ? v.join(', ') : String(v);
          resolve({ status: res.statusCode ?? 0, headers: out, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new TimeoutError(`no answer from the sidecar within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export class TimeoutError extends Error {
  override name = 'TimeoutError';
}
