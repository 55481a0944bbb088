/**
 * Test-only, loaded with `node --import` into the node processes of test/helpers/cluster.ts: every
 * node the process starts also answers `POST /api/test/flows` {service, keys, backend?}, which
 * creates flows through the router directly (and records `backend` for them), so that tests of
 * the cluster layer need no protocol traffic. The route is a state change like any other: it
 * needs the admin token. Production code has no such route; this file reaches it through the
 * built package (dist/), the same module instances `bin/tandem.js` runs.
 */
import { TandemNode } from '../../dist/index.js';

const start = TandemNode.prototype.start;

TandemNode.prototype.start = function startWithFlowHook() {
  this.admin.post('/api/test/flows', (req) => {
    const b = req.body ?? {};
    if (typeof b.service !== 'string' || !Array.isArray(b.keys)) return { status: 400, json: { error: 'service and keys required' } };
    const flows = b.keys.map((key) => {
      const e = this.router.lookup(b.service, String(key));
      const r = typeof b.backend === 'string' ? this.router.assign(e, () => true, () => b.backend) : { entry: e };
      return { key: r.entry.key, primary: r.entry.primary, backup: r.entry.backup, backend: r.entry.backend };
    });
    return { status: 200, json: { flows } };
  });
  return start.call(this);
};
