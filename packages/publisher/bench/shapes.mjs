// The loop shapes and record shapes of issue #11's matrix, shared by publisher.bench.mjs and
// profile-shape.mjs (one row under `node --cpu-prof`).
const turn = () => new Promise((resolve) => setImmediate(resolve));
/** Loop shapes: how the app's calls meet the event loop. `call(i)` logs record i. */
export const loops = {
  burst: async (n, call) => {
    for (let i = 0; i < n; i++) call(i);
  },
  yield1000: async (n, call) => {
    for (let i = 0; i < n; i++) {
      call(i);
      if (i % 1000 === 999) await turn();
    }
  },
  yield5000: async (n, call) => {
    for (let i = 0; i < n; i++) {
      call(i);
      if (i % 5000 === 4999) await turn();
    }
  },
  perTurn: async (n, call) => {
    for (let i = 0; i < n; i++) {
      call(i);
      await turn();
    }
  },
  microtask: async (n, call) => {
    for (let i = 0; i < n; i++) {
      call(i);
      if (i % 1000 === 999) await null;
    }
  },
};
/**
 * The floor of a loop shape: what the app's loop costs with a logger that does nothing, called with
 * the same arguments (built the same way). The arguments are kept in a module variable, so V8
 * cannot see them unused and leave out building them.
 */
let _kept;
export const emptyLog = (message, fields) => {
  _kept = fields ?? message;
};
const words = 'order created for the customer at the front desk with express shipping and gift wrap '.repeat(40);
const message50 = words.slice(0, 50);
const message2k = words.slice(0, 2048);
const fieldsOf = (count) => {
  const names = Array.from({ length: count }, (_, k) => ['orderId', 'user', 'total', 'path', 'region'][k] ?? `field${k}`);
  return (i) => {
    const out = {};
    for (let k = 0; k < names.length; k++) out[names[k]] = k === 0 ? i : k === 2 ? 12.5 : k === 1 ? 'user' + (i % 100) : '/api/orders';
    return out;
  };
};
const five = fieldsOf(5);
/** The matrix's rows: a loop shape and a record shape each; `n`, when set, the records of that row instead of `shapeN`. */
export const matrixShapes = (shapeN) => [
  { name: 'synchronous burst', loop: 'burst', message: message50, fields: five },
  { name: 'setImmediate every 1000 calls', loop: 'yield1000', message: message50, fields: five, yields: true },
  { name: 'setImmediate every 5000 calls', loop: 'yield5000', message: message50, fields: five, yields: true },
  { name: 'one call per turn (request handler)', loop: 'perTurn', message: message50, fields: five, yields: true, n: Math.round(shapeN / 3) },
  { name: 'microtask (await) every 1000 calls, no yield', loop: 'microtask', message: message50, fields: five },
  { name: "every 5000: child logger's bindings (2) + 5 fields", loop: 'yield5000', message: message50, fields: five, child: { requestId: 'req-8d1f0c', tenant: 'acme' }, yields: true },
  { name: 'every 5000: 1 field', loop: 'yield5000', message: message50, fields: fieldsOf(1), yields: true },
  { name: 'every 5000: 20 fields', loop: 'yield5000', message: message50, fields: fieldsOf(20), yields: true },
  { name: 'every 5000: 2 KB message', loop: 'yield5000', message: message2k, fields: five, yields: true },
  // A long-lived app's later bursts: each contender runs the loop once untimed first (the
  // publisher: the same one, flushed), as an app that bursts again does.
  { name: 'synchronous burst, the second one (same logger)', loop: 'burst', message: message50, fields: five, again: true },
];
