// Our SIF reader (formats/sif.ts, sources/sif) against the reference: the files the Go library
// wrote (shared/fixtures/sif) and one siftool makes here with groups, links, names, times and a
// random ID. Every field is compared with what siftool 2.x prints for it, run on the same file;
// and encode(decode(x)) gives back the header and every descriptor byte for byte.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DATA_TYPE_NAMES,
  DESCRIPTOR_SIZE,
  DataType,
  FS_TYPE_NAMES,
  HEADER_SIZE,
  PART_TYPE_NAMES,
  archName,
  decodeDescriptor,
  decodeHeader,
  decodePartitionExtra,
  encodeDescriptor,
  encodeHeader,
  groupText,
  linkText,
} from '../../src/formats/sif.js';
import { readSif } from '../../src/sources/sif/index.js';
import { verifySif } from '../../src/verify/sif.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { findSharedFixture } from '../helpers/shared-fixtures.js';
import { GO_ZERO_TIME, goTime, readableSize, siftool, siftoolFields, siftoolList, uuidText } from '../helpers/sif.js';
import { tmpDir } from '../helpers/tree.js';

const FIXTURES = findSharedFixture('sif', 'one-group.sif');
const haveFixtures = canRun(FIXTURES !== null, 'SIF reader on the Go library’s files', 'shared/fixtures/sif is not beside the checkout');
const haveSiftool = canRun(hasCommand('siftool'), 'SIF reader compared with siftool', 'siftool is not installed');

let work: string;
/** Every file compared: the fixtures, then the one siftool makes in beforeAll. */
const files: string[] = [];

beforeAll(() => {
  work = tmpDir('sw-sif-unit-');
  if (FIXTURES) for (const f of fs.readdirSync(FIXTURES).sort()) if (f.endsWith('.sif')) files.push(path.join(FIXTURES, f));
  if (haveSiftool) {
    // Fields the deterministic fixtures leave at their defaults: an ID, times, names, groups other
    // than 1, object and no links, a data partition of another file system and architecture.
    const made = path.join(work, 'made-by-siftool.sif');
    fs.writeFileSync(path.join(work, 'data.json'), '{"a":1}\n');
    fs.writeFileSync(path.join(work, 'raw.bin'), 'abc');
    fs.writeFileSync(path.join(work, 'rootfs.sqfs'), Buffer.alloc(8192, 0x5a));
    siftool(['new', made]);
    siftool(['add', made, path.join(work, 'data.json'), '--datatype', '6', '--groupid', '2', '--filename', 'data.json']);
    siftool(['add', made, path.join(work, 'raw.bin'), '--datatype', '4', '--parttype', '3', '--partfs', '3', '--partarch', '4', '--link', '1']);
    siftool(['add', made, path.join(work, 'rootfs.sqfs'), '--datatype', '4', '--parttype', '2', '--partfs', '1', '--partarch', '2', '--groupid', '1', '--filename', 'rootfs.squashfs']);
    siftool(['add', made, path.join(work, 'raw.bin'), '--datatype', '7', '--link', '2', '--groupid', '3']);
    siftool(['add', made, path.join(work, 'data.json'), '--datatype', '1']);
    files.push(made);
  }
});

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

const name = (f: string) => path.basename(f);

describe.runIf(haveFixtures)('the reference files are all there', () => {
  it('finds the five files the Go library wrote', () => {
    expect(files.filter((f) => f.startsWith(FIXTURES!)).map(name)).toEqual(['empty.sif', 'one-group-signed-pgp.sif', 'one-group.sif', 'one-object-generic-json.sif', 'two-groups.sif']);
  });
});

describe.runIf(haveFixtures && haveSiftool)('readSif gives what siftool prints', () => {
  it('header: every line of `siftool header`, and no line siftool leaves out', () => {
    for (const f of files) {
      const h = readSif(f).header;
      const shown = siftoolFields(siftool(['header', f]));
      const ours = new Map<string, string>();
      if (h.launchScript !== '') ours.set('Launch Script', h.launchScript.replace(/\n$/, ''));
      ours.set('Version', h.version);
      if (archName(h.arch) !== 'unknown') ours.set('Primary Architecture', archName(h.arch));
      if (!h.id.equals(Buffer.alloc(16))) ours.set('ID', uuidText(h.id));
      if (h.createdAt !== GO_ZERO_TIME) ours.set('Created At', goTime(h.createdAt));
      if (h.modifiedAt !== GO_ZERO_TIME) ours.set('Modified At', goTime(h.modifiedAt));
      ours.set('Descriptors Free', String(h.descriptorsFree));
      ours.set('Descriptors Total', String(h.descriptorsTotal));
      ours.set('Descriptors Offset', String(h.descriptorsOffset));
      ours.set('Descriptors Size', readableSize(h.descriptorsSize));
      ours.set('Data Offset', String(h.dataOffset));
      ours.set('Data Size', readableSize(h.dataSize));
      expect(Object.fromEntries(ours), name(f)).toEqual(Object.fromEntries(shown));
    }
  });

  it('the file siftool made here has an ID and times, which the header shows', () => {
    const made = files.at(-1)!;
    expect(name(made)).toBe('made-by-siftool.sif');
    const shown = siftoolFields(siftool(['header', made]));
    expect(shown.get('ID')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(shown.get('Created At')).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC$/);
    expect(uuidText(readSif(made).header.id)).toBe(shown.get('ID'));
  });

  it('descriptors: the rows of `siftool list`, in order (id, group, link, start-end, type)', () => {
    let rows = 0;
    const ourRows: Record<string, unknown[]> = {};
    const listedRows: Record<string, unknown[]> = {};
    for (const f of files) {
      const sif = readSif(f);
      const listed = siftoolList(siftool(['list', f]));
      const ours = sif.objects.map((d) => {
        let type = DATA_TYPE_NAMES[d.dataType] ?? 'Unknown';
        if (d.dataType === DataType.partition) {
          const p = decodePartitionExtra(d.extra);
          type = `FS (${FS_TYPE_NAMES[p.fsType]}/${PART_TYPE_NAMES[p.partType]}/${archName(p.arch)})`;
        }
        return { id: d.id, group: groupText(d.groupId), link: linkText(d.linkedId), start: d.offset, end: d.offset + d.size, type };
      });
      // Signatures print their hash type, which the descriptor's extra holds; the rest compares whole.
      ourRows[name(f)] = ours.map((o) => (o.type === 'Signature' ? { ...o, type: expect.stringMatching(/^Signature \(/) } : o));
      listedRows[name(f)] = listed;
      rows += listed.length;
    }
    // One comparison of every file: a failure shows all the rows that differ.
    expect(ourRows).toEqual(listedRows);
    // empty.sif lists nothing; the others 1 + 3 + 2 + 3, and 5 in the file made here.
    expect(rows).toBe(haveFixtures ? 9 + 5 : 5);
  });

  it('descriptors: every line of `siftool info ID` (type, id, group, link, offset, size, times, name, partition fields, entity)', () => {
    let compared = 0;
    const ourInfo: Record<string, unknown> = {};
    const shownInfo: Record<string, unknown> = {};
    for (const f of files) {
      for (const d of readSif(f).objects) {
        const shown = siftoolFields(siftool(['info', String(d.id), f]));
        const ours = new Map<string, string>([
          ['Data Type', DATA_TYPE_NAMES[d.dataType] ?? 'Unknown'],
          ['ID', String(d.id)],
          ['Group ID', groupText(d.groupId)],
          ['Linked ID', linkText(d.linkedId)],
          ['Offset', String(d.offset)],
          ['Size', String(d.size)],
        ]);
        if (d.createdAt !== GO_ZERO_TIME) ours.set('Created At', goTime(d.createdAt));
        if (d.modifiedAt !== GO_ZERO_TIME) ours.set('Modified At', goTime(d.modifiedAt));
        if (d.name !== '') ours.set('Name', d.name);
        if (d.dataType === DataType.partition) {
          const p = decodePartitionExtra(d.extra);
          ours.set('Filesystem Type', FS_TYPE_NAMES[p.fsType] ?? 'Unknown');
          ours.set('Partition Type', PART_TYPE_NAMES[p.partType] ?? 'Unknown');
          ours.set('Architecture', archName(p.arch));
        }
        if (d.dataType === DataType.signature) {
          // The hash type's name is Go's; its code and the key fingerprint are ours to read.
          expect(d.extra.readInt32LE(0), `${name(f)} object ${d.id}: hash type`).toBe(1);
          ours.set('Hash Type', 'SHA-256');
          ours.set('Entity', d.extra.subarray(4, 24).toString('hex').toUpperCase());
        }
        ourInfo[`${name(f)} object ${d.id}`] = Object.fromEntries(ours);
        shownInfo[`${name(f)} object ${d.id}`] = Object.fromEntries(shown);
        compared++;
      }
    }
    expect(ourInfo).toEqual(shownInfo);
    expect(compared).toBe(haveFixtures ? 14 : 5);
  });

  it('verify --json reports the objects as siftool lists them (types of signatures included)', async () => {
    const reported: Record<string, unknown[]> = {};
    const listed: Record<string, unknown[]> = {};
    for (const f of files) {
      const r = await verifySif(f);
      reported[name(f)] = r.stats.sif.objects.map((o) => ({ id: o.id, group: o.group, link: o.link, start: o.offset, end: o.offset + o.size, type: o.type }));
      listed[name(f)] = siftoolList(siftool(['list', f]));
    }
    expect(reported).toEqual(listed);
  });

  it('siftool dump of a metadata object is the bytes at the descriptor’s offset and size', () => {
    for (const f of files) {
      const bytes = fs.readFileSync(f);
      for (const d of readSif(f).objects) {
        if (d.dataType === DataType.partition || d.size > 4096) continue;
        const dumped = siftool(['dump', String(d.id), f]);
        expect(bytes.subarray(d.offset, d.offset + d.size).toString('utf8'), `${name(f)} object ${d.id}`).toBe(dumped);
      }
    }
  });
});

describe.runIf(haveFixtures || haveSiftool)('encode(decode(x)) is x', () => {
  it('the 128-byte header and every descriptor slot (used or not), byte for byte', () => {
    let slots = 0;
    for (const f of files) {
      const b = fs.readFileSync(f);
      const raw = b.subarray(0, HEADER_SIZE);
      const h = decodeHeader(raw);
      expect(encodeHeader(h).equals(raw), `${name(f)} header`).toBe(true);
      expect(h.descriptorsTotal, name(f)).toBe(48);
      for (let i = 0; i < h.descriptorsTotal; i++) {
        const at = h.descriptorsOffset + i * DESCRIPTOR_SIZE;
        const slot = b.subarray(at, at + DESCRIPTOR_SIZE);
        const again = encodeDescriptor(decodeDescriptor(slot));
        if (!again.equals(slot)) {
          const first = again.findIndex((x, j) => x !== slot[j]);
          throw new Error(`${name(f)} descriptor ${i}: byte ${first} is ${again[first]}, was ${slot[first]}`);
        }
        slots++;
      }
    }
    expect(slots).toBe(48 * files.length);
  });

  it('the fields hold the documented values where the layout says (so a round trip is not of zeros)', () => {
    if (!FIXTURES) return;
    const f = path.join(FIXTURES, 'one-group-signed-pgp.sif');
    const sif = readSif(f);
    expect(sif.header.magic).toBe('SIF_MAGIC');
    expect(sif.header.dataOffset).toBe(32176);
    expect(sif.objects.map((d) => d.offset)).toEqual([32768, 36864, 40960]);
    expect(sif.objects.map((d) => [d.id, d.dataType, d.groupId >>> 0, d.linkedId >>> 0])).toEqual([
      [1, 0x4004, 0xf0000001, 0],
      [2, 0x4004, 0xf0000001, 0],
      [3, 0x4005, 0xf0000000, 0xf0000001],
    ]);
    expect(decodePartitionExtra(sif.objects[1]!.extra)).toEqual({ fsType: 1, partType: 2, arch: '01' });
  });
});
