import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { archiveKey } from '@log/s3-archiver';
import { FileSummary, closedFileName, closedNameOfManifest, manifestPathOf, newClosedFile, parseClosedName, readManifest } from './closed-file';

const T = Date.UTC(2026, 10, 25, 13, 4, 5, 678);

describe('closed file names', () => {
  it('names a file by its first record time and unique part, and parses the name back', () => {
    expect(closedFileName(T, '1f2e3d4c')).toBe('20261125T130405678Z-1f2e3d4c.jsonl');
    expect(parseClosedName('shop', '/log/shop', '20261125T130405678Z-1f2e3d4c.jsonl')).toEqual({ app: 'shop', path: '/log/shop/20261125T130405678Z-1f2e3d4c.jsonl', firstTime: T, unique: '1f2e3d4c' });
  });

  it('makes new files with distinct unique parts that parse back to themselves', () => {
    const files = [newClosedFile('shop', '/log/shop', T), newClosedFile('shop', '/log/shop', T)];
    expect(files[0]!.unique).not.toBe(files[1]!.unique);
    for (const file of files) expect(parseClosedName('shop', '/log/shop', basename(file.path))).toEqual(file);
  });

  it('takes nothing else for a closed file: open files, manifests, other names, impossible times', () => {
    for (const name of [
      'shop.log',
      '20261125T130405678Z-1f2e3d4c.manifest.json',
      '20261125T130405678Z-1f2e3d4c.jsonl.tmp',
      '20261125T130405678Z-1F2E3D4C.jsonl',
      '20261125T130405678Z-1f2e3d4.jsonl',
      '20261399T130405678Z-1f2e3d4c.jsonl',
      '../20261125T130405678Z-1f2e3d4c.jsonl',
    ]) {
      expect(parseClosedName('shop', '/log/shop', name)).toBeUndefined();
    }
  });

  it('puts the manifest beside the file and finds the file a manifest belongs to', () => {
    const path = '/log/shop/20261125T130405678Z-1f2e3d4c.jsonl';
    expect(manifestPathOf(path)).toBe('/log/shop/20261125T130405678Z-1f2e3d4c.manifest.json');
    expect(closedNameOfManifest(basename(manifestPathOf(path)))).toBe(basename(path));
    expect(closedNameOfManifest('20261125T130405678Z-1f2e3d4c.jsonl')).toBeUndefined();
    expect(closedNameOfManifest('notes.manifest.json')).toBeUndefined();
  });

  it('is what the archive key is derived from: <host>-<closed name>.gz', () => {
    const file = parseClosedName('shop', '/log/shop', '20261125T130405678Z-1f2e3d4c.jsonl')!;
    expect(archiveKey({ prefix: 'logs', app: file.app, host: 'app1', firstTime: file.firstTime, unique: file.unique })).toBe(
      'logs/shop/dt=2026-11-25/hour=13/app1-20261125T130405678Z-1f2e3d4c.jsonl.gz',
    );
  });
});

describe('FileSummary and the manifest', () => {
  it('counts records, earliest and latest times and per-producer ranges, late records included', () => {
    const summary = new FileSummary();
    summary.add(T + 10, 'p1', 5);
    summary.add(T, 'p1', 7); // arrived late: earlier time, later seq
    summary.add(T + 5, 'p2', 1);
    summary.add(T + 20, 'p1', 6);
    expect(summary.manifest('shop', 'x.jsonl')).toEqual({
      version: 1,
      app: 'shop',
      file: 'x.jsonl',
      records: 4,
      firstTime: new Date(T).toISOString(),
      lastTime: new Date(T + 20).toISOString(),
      producers: [
        { producer: 'p1', minSeq: 5, maxSeq: 7, records: 3 },
        { producer: 'p2', minSeq: 1, maxSeq: 1, records: 1 },
      ],
    });
  });

  it('an empty summary has no times; a manifest is a copy that later adds do not change', () => {
    const summary = new FileSummary();
    expect(summary.manifest('shop', 'x.jsonl')).toMatchObject({ records: 0, firstTime: undefined, lastTime: undefined, producers: [] });
    summary.add(T, 'p1', 1);
    const manifest = summary.manifest('shop', 'x.jsonl');
    summary.add(T, 'p1', 2);
    expect(manifest.producers[0]).toEqual({ producer: 'p1', minSeq: 1, maxSeq: 1, records: 1 });
  });

  it('reads a manifest back, and nothing from a missing, broken or foreign file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'closed-file-'));
    try {
      const summary = new FileSummary();
      summary.add(T, 'p1', 1);
      const manifest = summary.manifest('shop', 'x.jsonl');
      writeFileSync(join(dir, 'good.manifest.json'), JSON.stringify(manifest) + '\n');
      writeFileSync(join(dir, 'broken.manifest.json'), '{"version":1,');
      writeFileSync(join(dir, 'foreign.manifest.json'), '{"version":2,"producers":[]}');
      expect(readManifest(join(dir, 'good.manifest.json'))).toEqual(JSON.parse(JSON.stringify(manifest)));
      for (const name of ['missing', 'broken', 'foreign']) expect(readManifest(join(dir, `${name}.manifest.json`))).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
