// SquashFS 4.0 on-disk format: one module for the reader, the verifier and the writer, each record
// with its encoder and decoder side by side (docs: /work/shared/reference/squashfs.md §1).
export * from './superblock.js';
export * from './metadata.js';
export * from './inodes.js';
export * from './directory.js';
export * from './options.js';
export * from './tables.js';
export * from './xattrs.js';
export { readU64, writeU64 } from './fields.js';
