// What a build reports while it runs; the caller draws it (the CLI: a bar, lines, or nothing).
import type { Diagnostics } from '../model/diagnostics.js';

/** A stage that counts things as it goes (base layers read, entries selected). */
export interface StageProgress {
  tick(count: number, bytes: number): void;
  done(): void;
}

/** Writing the image: bytes of file content written so far, of a total known at the start. */
export interface WriteProgress {
  update(bytes: number, files: number): void;
  stop(): void;
}

export interface ProgressHooks {
  /** `unit` names what is counted ('layers'; default entries). */
  stage(label: string, unit?: string): StageProgress;
  writing(label: string, totalBytes: number): WriteProgress;
}

export interface BuildHooks {
  /** Warnings go here (and to its sink as they come). */
  diagnostics: Diagnostics;
  progress?: ProgressHooks;
}

export const silentProgress: ProgressHooks = {
  stage: () => ({ tick: () => {}, done: () => {} }),
  writing: () => ({ update: () => {}, stop: () => {} }),
};
