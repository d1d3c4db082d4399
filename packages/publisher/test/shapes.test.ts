import { InvalidOptionError } from '../src';
import { readStream, redisAndPublishers } from './helpers';

const kit = redisAndPublishers('shapes');
const { channel, publisher } = kit;

async function published(ch: string) {
  return (await readStream(kit.redis.url, ch)).records;
}

describe("levels and pino's call shapes", () => {
  it("has pino's six levels, filtered by the threshold", async () => {
    const ch = channel();
    const log = publisher(ch, { level: 'trace' });
    log.trace('t');
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    log.fatal('f');
    const quiet = publisher(ch, { level: 'fatal' });
    quiet.error('filtered');
    quiet.fatal('kept');
    await Promise.all([log.flush(), quiet.flush()]);
    const records = await published(ch);
    // two publishers, two connections: which frame Redis takes first is not theirs to say
    const of = (producer: string) => records.filter((r) => r.producer === producer).map((r) => [r.level, r.message]);
    expect(of(log.producer)).toEqual([
      ['trace', 't'],
      ['debug', 'd'],
      ['info', 'i'],
      ['warn', 'w'],
      ['error', 'e'],
      ['fatal', 'f'],
    ]);
    expect(of(quiet.producer)).toEqual([['fatal', 'kept']]);
    expect(records).toHaveLength(7);
    expect(quiet.stats().logged).toBe(1);
  });

  it('takes (fields, message) as well as (message, fields), and (err, message)', async () => {
    const ch = channel();
    const log = publisher(ch);
    log.info({ orderId: 1 }, 'order placed');
    log.info('order placed', { orderId: 2 });
    log.info({ orderId: 3 });
    log.error(new Error('declined'), 'payment failed');
    log.error('payment failed', new Error('declined again'));
    log.child({ requestId: 'r1' }).warn({ orderId: 4 }, 'slow');
    await log.flush();
    const records = await published(ch);
    expect(records.map((r) => [r.message, r.fields])).toEqual([
      ['order placed', { orderId: 1 }],
      ['order placed', { orderId: 2 }],
      ['', { orderId: 3 }],
      ['payment failed', undefined],
      ['payment failed', undefined],
      ['slow', { requestId: 'r1', orderId: 4 }],
    ]);
    expect(records[3]!.error).toMatchObject({ name: 'Error', message: 'declined' });
    expect(records[4]!.error).toMatchObject({ name: 'Error', message: 'declined again' });
  });

  it('writes each message as given when messages repeat, change, need escapes or are long (the last one is remembered quoted)', async () => {
    const ch = channel();
    const log = publisher(ch);
    const child = log.child({ requestId: 'r1' });
    const long = 'l'.repeat(5000);
    const messages = ['', 'same', 'same', 'abcd', 'quote " and \n newline', 'same', 's' + 'ame', long, 'other', long, long, '\ud800 lone', 'same'];
    for (const message of messages) {
      log.info(message, { k: 1 });
      child.info(message); // another logger, its own last message
    }
    await log.flush();
    const records = await published(ch);
    expect(records.map((r) => r.message)).toEqual(messages.flatMap((m) => [m, m]));
  });

  it('writes an err field as the record error in every shape, with its cause, and keeps the other fields', async () => {
    const ch = channel();
    const log = publisher(ch);
    const err = new TypeError('bad input', { cause: new Error('root cause') });
    log.error({ err, orderId: 1 }, 'failed');
    log.error('failed', { err, orderId: 2 });
    log.child({ err }).warn('bound');
    log.child({ err }).warn(new RangeError('own error wins'));
    // an error already serialized elsewhere (pino's err serializer: type, message, stack)
    log.error({ err: { type: 'SyntaxError', message: 'parsed', stack: 'SyntaxError: parsed\n    at x' } }, 'from a worker');
    // an err that is no error stays a field (the server writes it as fields.err)
    log.info({ err: 'just text' }, 'not an error');
    await log.flush();
    const records = await published(ch);
    expect(records[0]).toMatchObject({ message: 'failed', fields: { orderId: 1 }, error: { name: 'TypeError', message: 'bad input', cause: { message: 'root cause' } } });
    expect(records[0]!.fields).not.toHaveProperty('err');
    expect(records[1]).toMatchObject({ message: 'failed', fields: { orderId: 2 }, error: { name: 'TypeError', message: 'bad input' } });
    expect(records[2]).toMatchObject({ message: 'bound', error: { name: 'TypeError', message: 'bad input' } });
    expect(records[2]!.fields).toBeUndefined();
    expect(records[3]).toMatchObject({ message: 'own error wins', error: { name: 'RangeError' } });
    expect(records[4]).toMatchObject({ error: { name: 'SyntaxError', message: 'parsed', stack: 'SyntaxError: parsed\n    at x' } });
    expect(records[5]).toMatchObject({ fields: { err: 'just text' } });
    expect(records[5]!.error).toBeUndefined();
  });

  it('redacts paths before serialization, in call fields, bindings and static fields, without touching the caller objects', async () => {
    const ch = channel();
    const log = publisher(ch, {
      fields: { password: 'static' },
      redact: ['password', 'card.number', 'users[*].token', 'headers["x-api-key"]', '*.secret'],
    });
    const card = { number: '4111111111111111', expiry: '12/30' };
    const input = { user: 'ann', password: 'hunter2', card, users: [{ name: 'a', token: 't1' }, { name: 'b' }], headers: { 'x-api-key': 'k', accept: '*/*' }, deep: { secret: 's', open: 1 } };
    log.info(input, 'login');
    log.child({ password: 'bound' }).info('child');
    log.info('no match', { other: 1 });
    await log.flush();
    const records = await published(ch);
    expect(records[0]!.fields).toEqual({
      password: '[Redacted]',
      user: 'ann',
      card: { number: '[Redacted]', expiry: '12/30' },
      users: [{ name: 'a', token: '[Redacted]' }, { name: 'b' }],
      headers: { 'x-api-key': '[Redacted]', accept: '*/*' },
      deep: { secret: '[Redacted]', open: 1 },
    });
    expect(records[1]!.fields).toEqual({ password: '[Redacted]' });
    expect(records[2]!.fields).toEqual({ password: '[Redacted]', other: 1 });
    expect(input.password).toBe('hunter2');
    expect(card.number).toBe('4111111111111111');
    expect(input.users[0]!.token).toBe('t1');
    expect(JSON.stringify(records)).not.toMatch(/hunter2|4111|"t1"|"bound"|"static"/);
  });

  it('removes redacted paths, or writes its own censor, when asked', async () => {
    const ch = channel();
    const removing = publisher(ch, { redact: { paths: ['password', 'a.b'], remove: true } });
    const censoring = publisher(ch, { redact: { paths: ['password'], censor: '***' } });
    removing.info({ password: 'x', a: { b: 1, c: 2 }, keep: true }, 'removed');
    await removing.flush();
    censoring.info({ password: 'x' }, 'censored');
    await censoring.flush();
    const records = await published(ch);
    expect(records[0]!.fields).toEqual({ a: { c: 2 }, keep: true });
    expect(records[1]!.fields).toEqual({ password: '***' });
  });

  it('refuses bad levels and redact paths at construction, naming each', () => {
    const build = (options: object) => () => publisher(channel(), options);
    expect(build({ level: 'verbose' })).toThrow(/level must be one of trace, debug, info, warn, error, fatal/);
    let caught: unknown;
    try {
      build({ redact: ['ok', 'a..b', 'c[x]', '', 'd.', 7] })();
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidOptionError);
    expect((caught as InvalidOptionError).problems).toEqual([
      'redact path "a..b" has an empty segment at 2',
      'redact path "c[x]" has [x]: brackets hold *, an index or a quoted key',
      'redact path "" is empty',
      'redact path "d." ends with a dot',
      'redact path 7 is not a string',
    ]);
  });
});
