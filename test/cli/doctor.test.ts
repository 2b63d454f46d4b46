// `torchedit doctor`, text and --json, on this machine (Debian's CPU libtorch 1.13) and with
// libtorch hidden, where it must still report — and say why it cannot load.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { DoctorReport } from '../../lib/cli/doctorReport.js';
import { repoRoot, testBundle } from '../helpers.js';

const empty = mkdtempSync(join(tmpdir(), 'torchedit-doctor-'));
after(() => rmSync(empty, { recursive: true, force: true }));

function doctor(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'torchedit.js'), 'doctor', ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('doctor --json reports libtorch, the addon, threads, BLAS, devices and the default model', () => {
  const r = doctor(['--json']);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as DoctorReport;
  const lib = report.libtorch.chosen!;
  assert.equal(lib.version, '1.13.0');
  assert.equal(lib.cxx11Abi, true);
  assert.equal(lib.cuda, false);
  assert.match(lib.cudaReason, /no libtorch_cuda\.so in .*: a CPU-only build of libtorch/);
  assert.equal(lib.realLibDir, '/usr/lib/x86_64-linux-gnu');
  assert.ok(report.libtorch.searched.length > 0);
  assert.equal(report.libtorch.explicit, null);
  assert.deepEqual(report.load, { ok: true });
  assert.ok(report.addon.chosen, 'no addon chosen');
  assert.match(report.addon.chosen.builtFor, /^libtorch (1\.13 \(C\+\+11 ABI, CPU\)|\(not recorded\))$/);
  assert.equal(report.runtime?.torchVersion, '1.13.0');
  assert.ok(report.threads.cpus >= 1);
  assert.ok(Number.isInteger(report.threads.intraOp));
  assert.equal(report.blas.kind, 'OpenBLAS (pthreads)'); // .ci/run installs libopenblas0-pthread
  assert.equal(report.cuda.available, false);
  assert.equal(report.devices[0].device, 'cpu');
  assert.ok(report.devices[0].totalBytes! > 0);
  assert.equal(report.devices.length, 1);
  assert.equal(report.model.path, join(repoRoot, 'models', 'shapes-64'));
  assert.equal(typeof report.model.exists, 'boolean');
});

test('doctor prints the same as text', () => {
  const r = doctor([]);
  assert.equal(r.status, 0, r.stderr);
  const text = r.stdout;
  assert.match(text, /^torchedit \d+\.\d+\.\d+ \(node v\d+/);
  assert.match(text, /\nlibtorch\n {2}found: {5}\S+ \(/);
  assert.match(text, /\n {2}version: {3}1\.13\.0 \(from /);
  assert.match(text, /\n {2}C\+\+ ABI: {3}C\+\+11 \(_GLIBCXX_USE_CXX11_ABI=1\)/);
  assert.match(text, /\n {2}CUDA: {6}no — no libtorch_cuda\.so in /);
  assert.match(text, /\naddon\n {2}chosen: {4}\S+torchedit[^ ]*\.node \((prebuilt|source build)/);
  assert.match(text, /\n {2}load: {6}ok\n/);
  assert.match(text, /\n {2}threads: {3}\d+ intra-op, \d+ CPUs\n/);
  assert.match(text, /\n {2}BLAS: {6}OpenBLAS/);
  assert.match(text, /\ndevices\n {2}cpu {8}.+: [\d.]+ GiB total, [\d.]+ GiB free\n {2}cuda {7}not available: no libtorch_cuda\.so/);
  assert.match(text, /\ndefault model\n {2}path: {6}\S+shapes-64/);
});

test('with libtorch hidden, doctor still reports, says why, and fails with the code', () => {
  const json = doctor(['--json'], { TORCHEDIT_LIBTORCH: empty });
  assert.equal(json.status, 1);
  const report = JSON.parse(json.stdout) as DoctorReport;
  assert.equal(report.libtorch.chosen, null);
  assert.deepEqual(report.libtorch.explicit, { source: 'TORCHEDIT_LIBTORCH', value: empty });
  assert.deepEqual(report.libtorch.searched, [
    { source: 'TORCHEDIT_LIBTORCH', place: empty, result: `no libtorch_cpu.so in ${empty}/lib, ${empty} or ${empty}/lib/x86_64-linux-gnu` },
  ]);
  assert.equal(report.load.ok, false);
  assert.equal((report.load as { code: string }).code, 'ERR_LIBTORCH_NOT_FOUND');
  assert.equal(report.runtime, null);
  assert.equal(report.cuda.reason, 'no libtorch found');
  assert.match(json.stderr, /^torchedit: libtorch was not found\. .* \[ERR_LIBTORCH_NOT_FOUND\]\n$/);

  const text = doctor([], { TORCHEDIT_LIBTORCH: empty });
  assert.equal(text.status, 1);
  assert.match(text.stdout, /\n {2}found: {5}none\n/);
  assert.match(text.stdout, new RegExp(`\\n {2}set by: {4}TORCHEDIT_LIBTORCH=${empty} \\(the only place looked at\\)`));
  assert.match(text.stdout, /\n {2}load: {6}failed, ERR_LIBTORCH_NOT_FOUND:\n {4}libtorch was not found\./);
  assert.match(text.stdout, /sudo apt-get install libtorch-dev libopenblas0-pthread/);
  assert.match(text.stdout, /\nproblems\n {2}- torchedit cannot load \(ERR_LIBTORCH_NOT_FOUND\)/);
});

test('doctor reports the fused attention kernel, and with --load-model the sites fused per module', () => {
  const r = doctor(['--json', '--load-model', '-m', testBundle()]);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as DoctorReport;
  assert.equal(report.attention?.fused, true);
  assert.ok(report.attention?.available.includes('scalar'));
  // The tiny bundle's UNet: self- and cross-attention in its down and up blocks (make_test_bundle.py).
  assert.deepEqual(report.modelAttention, {
    path: testBundle(),
    ok: true,
    sites: { textEncoder: 0, unet: 4, vaeEncoder: 0, vaeDecoder: 0 },
  });
  const text = doctor(['--load-model', '-m', testBundle()]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /\n {2}attention: fused kernel on, (avx512|avx2|scalar) \(CPU runs [a-z0-9, ]+\), GEMM \S+\n/);
  assert.match(text.stdout, /\n {2}fused: {5}4 attention site\(s\) in unet\.pt, 0 in text_encoder\.pt/);
});
