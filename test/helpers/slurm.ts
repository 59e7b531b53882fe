// A throwaway single-host Slurm cluster (Debian's slurm-wlm 22.05 and munge): its own munged on a
// private socket and key, slurmctld and slurmd on free loopback ports, one node `localhost` with
// two CPUs, state and spool in a temporary directory. Clients find it through SLURM_CONF (`env`).
// Everything runs in the foreground as children of the test, and is stopped by pid.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { canRun, hasCommand, isRoot } from './env.js';
import { freePort } from './registry.js';
import { tmpDir } from './tree.js';

export interface LocalSlurm {
  dir: string;
  conf: string;
  /** The environment for sbatch, squeue, scontrol, and for shrinkwrap slurm. */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

/** Can a cluster be started here? Loud when not (and an error in CI: .ci/run installs slurm-wlm and munge). */
export function canRunSlurm(what: string): boolean {
  const missing = ['munged', 'slurmctld', 'slurmd', 'sbatch', 'sinfo', 'scontrol', 'scancel'].filter((c) => !hasCommand(c));
  return canRun(isRoot && missing.length === 0, what, isRoot ? `${missing.join(', ')} not installed (Debian slurm-wlm, munge)` : 'slurmd launches jobs as root only');
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Every daemon started, so that a test runner exiting on an error does not leave them behind. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function daemon(dir: string, name: string, cmd: string, args: string[]): ChildProcess {
  const log = fs.openSync(path.join(dir, `${name}.out`), 'w');
  const child = spawn(cmd, args, { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}

async function stopDaemon(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

function slurmConf(dir: string, socket: string, ports: { ctld: number; slurmd: number }): string {
  return [
    'ClusterName=shrinkwraptest',
    'SlurmctldHost=localhost',
    `SlurmctldPort=${ports.ctld}`,
    `SlurmdPort=${ports.slurmd}`,
    'AuthType=auth/munge',
    'CredType=cred/munge',
    `AuthInfo=socket=${socket}`,
    'SlurmUser=root',
    'SlurmdUser=root',
    `StateSaveLocation=${path.join(dir, 'state')}`,
    `SlurmdSpoolDir=${path.join(dir, 'spool')}`,
    `SlurmctldPidFile=${path.join(dir, 'slurmctld.pid')}`,
    `SlurmdPidFile=${path.join(dir, 'slurmd.pid')}`,
    `SlurmctldLogFile=${path.join(dir, 'slurmctld.log')}`,
    `SlurmdLogFile=${path.join(dir, 'slurmd.log')}`,
    'ProctrackType=proctrack/linuxproc',
    'TaskPlugin=task/none',
    'SelectType=select/cons_tres',
    'SelectTypeParameters=CR_Core',
    'MpiDefault=none',
    'ReturnToService=2',
    'SchedulerType=sched/builtin',
    'SchedulerParameters=sched_interval=1,batch_sched_delay=0',
    'JobAcctGatherType=jobacct_gather/none',
    'AccountingStorageType=accounting_storage/none',
    'JobCompType=jobcomp/none',
    // A cancelled job's processes get SIGKILL this soon after SIGTERM (default 30 s).
    'KillWait=5',
    // Two CPUs whatever the machine has (a node with less than configured would be drained).
    'SlurmdParameters=config_overrides',
    'NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=256 State=UNKNOWN',
    'PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP',
    '',
  ].join('\n');
}

/** Start munged, slurmctld and slurmd, and wait until the node is idle. */
export async function startSlurm(): Promise<LocalSlurm> {
  const dir = tmpDir('sw-slurm-');
  // munged wants its socket's directory searchable by all and writable by none but its owner.
  fs.chmodSync(dir, 0o755);
  const mungeDir = path.join(dir, 'munge');
  fs.mkdirSync(mungeDir, { mode: 0o755 });
  for (const d of ['state', 'spool']) fs.mkdirSync(path.join(dir, d), { mode: 0o755 });
  const key = path.join(mungeDir, 'munge.key');
  fs.writeFileSync(key, crypto.randomBytes(1024), { mode: 0o400 });
  const socket = path.join(mungeDir, 'munge.socket');
  const children: ChildProcess[] = [];
  const stopAll = async () => {
    for (const c of children.reverse()) await stopDaemon(c);
  };
  try {
    children.push(
      daemon(dir, 'munged', 'munged', ['--foreground', `--key-file=${key}`, `--socket=${socket}`, `--pid-file=${path.join(mungeDir, 'munged.pid')}`, `--log-file=${path.join(mungeDir, 'munged.log')}`, `--seed-file=${path.join(mungeDir, 'munged.seed')}`]),
    );
    await waitFor(() => fs.existsSync(socket), children, 'munged', path.join(mungeDir, 'munged.log'));
    const conf = path.join(dir, 'slurm.conf');
    fs.writeFileSync(conf, slurmConf(dir, socket, { ctld: await freePort(), slurmd: await freePort() }));
    children.push(daemon(dir, 'slurmctld', 'slurmctld', ['-D', '-f', conf]));
    children.push(daemon(dir, 'slurmd', 'slurmd', ['-D', '-N', 'localhost', '-f', conf]));
    const env = { ...process.env, SLURM_CONF: conf };
    const idle = () => spawnSync('sinfo', ['-h', '-n', 'localhost', '-o', '%t'], { env, encoding: 'utf8', timeout: 5000 }).stdout?.trim() === 'idle';
    await waitFor(idle, children, 'the node to be idle', path.join(dir, 'slurmctld.log'));
    return {
      dir,
      conf,
      env,
      async stop() {
        // Jobs first (their processes are slurmd's children's), then the daemons.
        spawnSync('scancel', ['--full', '--user', 'root'], { env, timeout: 5000 });
        const deadline = Date.now() + STOP_TIMEOUT_MS * 2;
        while (Date.now() < deadline && (spawnSync('squeue', ['-h'], { env, encoding: 'utf8', timeout: 5000 }).stdout ?? '').trim() !== '') await sleep(200);
        await stopAll();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Poll `ready` until it holds; fail at once if a daemon exits, or after START_TIMEOUT_MS. */
async function waitFor(ready: () => boolean, children: ChildProcess[], what: string, log: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (ready()) return;
    const dead = children.find((c) => c.exitCode !== null || c.signalCode !== null);
    if (dead) throw new Error(`local Slurm: ${dead.spawnargs[0]} exited (${dead.exitCode ?? dead.signalCode}) while waiting for ${what}:\n${tail(log)}`);
    if (Date.now() > deadline) throw new Error(`local Slurm: no ${what} after ${START_TIMEOUT_MS / 1000} s:\n${tail(log)}`);
    await sleep(100);
  }
}

export interface JobState {
  /** ArrayTaskId for the tasks of an array, else ''. */
  task: string;
  state: string;
  exitCode: string;
}

/** `scontrol show job -o ID`: each job (each task of an array, in task order) with its state. */
export function jobStates(slurm: LocalSlurm, id: string): JobState[] {
  const r = spawnSync('scontrol', ['show', 'job', '-o', id], { env: slurm.env, encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`scontrol show job ${id}: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => ({ task: /\bArrayTaskId=(\S+)/.exec(l)?.[1] ?? '', state: /\bJobState=(\S+)/.exec(l)![1]!, exitCode: /\bExitCode=(\S+)/.exec(l)?.[1] ?? '' }))
    .sort((a, b) => Number(a.task) - Number(b.task));
}

const ENDED = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'OUT_OF_MEMORY', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE']);

/** Wait until every job (task) of `id` has ended; their states. */
export async function waitForJob(slurm: LocalSlurm, id: string, timeoutMs = 90_000): Promise<JobState[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = jobStates(slurm, id);
    if (states.length > 0 && states.every((s) => ENDED.has(s.state))) return states;
    if (Date.now() > deadline) throw new Error(`job ${id} has not ended after ${timeoutMs / 1000} s: ${JSON.stringify(states)}\n${tail(path.join(slurm.dir, 'slurmctld.log'))}`);
    await sleep(250);
  }
}
