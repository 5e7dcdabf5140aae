// Shared by the SDK's tests: the protocol's JSON Schemas (checked with Debian's
// python3-jsonschema, as the Python SDK's and the worker's tests do) and a scriptable
// local HTTP server (a simulated sidecar or upstream) on a free loopback port.
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** Validator messages for each object against schemas/<name>.schema.json ([] if valid). */
export function schemaErrors(name, objects) {
  const script = `
import json, sys, jsonschema
v = jsonschema.Draft202012Validator(json.load(open(sys.argv[1])))
out = [[e.json_path + ": " + e.message for e in v.iter_errors(o)] for o in json.load(sys.stdin)]
print(json.dumps(out))`;
  const out = execFileSync('/usr/bin/python3', ['-c', script, path.join(REPO, 'schemas', `${name}.schema.json`)],
    { input: JSON.stringify(objects) });
  return JSON.parse(out.toString()).flat();
}

export function envelope(fields = {}) {
  return {
    id: '01JTEST', type: 'slack.event', source: 'slack', dedupe_key: 'slack:Ev1', attempt: 1, max_attempts: 5,
    enqueued_at: '2026-11-27T20:00:00.000Z', deadline: '2099-01-01T00:00:00.000Z',
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', headers: {},
    payload: { team_id: 'T1', event: { type: 'message', user: 'U1', channel: 'C1', ts: '1.2', text: 'hi' } },
    ...fields,
  };
}

/** Answers every request with respond({method, url, headers, body}) ->
 *  {status, headers?, body?} (an object body is sent as JSON); records the requests. */
export async function startServer(respond) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const got = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() };
      requests.push(got);
      const out = await respond(got);
      let body = out.body ?? '';
      const headers = { ...(out.headers ?? {}) };
      if (typeof body !== 'string') {
        body = JSON.stringify(body);
        headers['Content-Type'] = 'application/json';
      }
      res.writeHead(out.status, headers).end(body);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`, requests,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

/** The headers and body of an answer the sidecar made itself. */
export function own(error, headers = {}) {
  return { headers: { 'X-Firebreak-Origin': 'firebreak', ...headers }, body: { ok: false, error } };
}
