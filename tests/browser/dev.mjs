// Development: firebreak seeded with data, the proxy, printed URLs and tokens; stays up
// until Ctrl-C. FIREBREAK_BIN=/path FIREBREAK_ADMIN_UI_DIR=src/admin/ui node tests/browser/dev.mjs
import { startFirebreak, seed, waitIdle, startProxy } from './lib.mjs';

const fb = await startFirebreak({ keepDir: true });
const exp = await seed(fb, 60);
await waitIdle(fb, exp.dead);
const proxy = await startProxy(fb);
const out = { dir: fb.dir, admin: fb.adminBase, proxy: proxy.base, secrets: fb.secrets, expected: exp };
console.log(JSON.stringify(out, null, 1));
setInterval(() => {}, 1 << 30);
