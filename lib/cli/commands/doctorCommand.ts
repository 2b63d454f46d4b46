/**
 * `torchedit doctor`: what torchedit finds on this machine and whether it can run — the libtorch
 * (where, version, ABI, CUDA or why not), the addon chosen for it, threads, BLAS, devices and
 * their memory, the default model, the fused attention kernel — as text or, with --json, one JSON
 * object (lib/cli/doctorReport.ts). `--load-model` also loads the model (-m or the default) and
 * says how many attention sites the load-time graph pass fused in each module.
 *
 * Works when the addon cannot load: the report says why, then the command fails with the
 * loader's error code (exit 1), so scripts can test `torchedit doctor >/dev/null`.
 */
import { Command } from 'commander';
import { TorchEditError } from '../../errors.js';
import { doctorReport, modelAttentionReport, type DoctorReport, type LibtorchReport } from '../doctorReport.js';
import { globalsOf, modelDir } from '../flags.js';

export function doctorCommand(): Command {
  return new Command('doctor')
    .description('Show the libtorch, addon, threads, BLAS, devices and default model torchedit finds, and what is wrong.')
    .addHelpText(
      'after',
      `
Environment it reads: TORCHEDIT_LIBTORCH / LIBTORCH (a libtorch folder: the only place looked at),
TORCHEDIT_PYTHON (the Python whose torch to use), TORCHEDIT_ADDON (a .node to use).`,
    )
    .option('--load-model', 'also load the model (-m or the default) and report the attention sites fused in each module')
    .action(async (flags: { loadModel?: boolean }, command: Command) => {
      const report = doctorReport();
      if (flags.loadModel && report.load.ok) {
        report.modelAttention = await modelAttentionReport(modelDir(globalsOf(command)));
        if (!report.modelAttention.ok) report.problems.push(`the model did not load: ${report.modelAttention.message}`);
      }
      if (globalsOf(command).json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else process.stdout.write(formatDoctor(report));
      if (!report.load.ok) throw new TorchEditError(report.load.code, report.load.message.split('\n')[0]);
    });
}

function gib(bytes: number | null): string {
  if (bytes === null) return '?';
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function libtorchLines(lib: LibtorchReport): string[] {
  const lines = [`  found:     ${lib.libDir} (${lib.origin})`];
  if (lib.realLibDir !== lib.libDir || lib.package) {
    lines.push(`             → ${lib.realLibDir}${lib.package ? ` (Debian package ${lib.package})` : ''}`);
  }
  lines.push(`  version:   ${lib.version ?? 'unknown'}${lib.versionSource ? ` (from ${lib.versionSource})` : ''}`);
  const abi =
    lib.cxx11Abi === null ? 'unknown' : lib.cxx11Abi ? 'C++11 (_GLIBCXX_USE_CXX11_ABI=1)' : 'pre-C++11 (_GLIBCXX_USE_CXX11_ABI=0)';
  lines.push(`  C++ ABI:   ${abi}${lib.abiSource ? ` (from ${lib.abiSource})` : ''}`);
  lines.push(`  CUDA:      ${lib.cuda ? `yes${lib.cudaVersion ? ` (CUDA ${lib.cudaVersion})` : ''}` : 'no'} — ${lib.cudaReason}`);
  return lines;
}

/** The human-readable report: sections of `label: value` lines, problems last. */
export function formatDoctor(r: DoctorReport): string {
  const out: string[] = [
    `torchedit ${r.torchedit.version} (node ${r.node.version}, ${r.node.platform}-${r.node.arch}, N-API ${r.node.napi})`,
    '',
  ];

  out.push('libtorch');
  if (r.libtorch.chosen) out.push(...libtorchLines(r.libtorch.chosen));
  else out.push('  found:     none');
  for (const other of r.libtorch.others) out.push(`  also:      ${other.libDir} (${other.origin}): ${other.summary}`);
  if (r.libtorch.explicit) out.push(`  set by:    ${r.libtorch.explicit.source}=${r.libtorch.explicit.value} (the only place looked at)`);
  out.push('  searched:');
  for (const s of r.libtorch.searched) out.push(`    ${s.source.padEnd(18)} ${s.place}: ${s.result}`);
  out.push('');

  out.push('addon');
  const chosen = r.addon.chosen;
  if (chosen) {
    const kind = chosen.kind === 'prebuild' ? 'prebuilt' : chosen.kind === 'build' ? 'source build' : 'TORCHEDIT_ADDON';
    out.push(`  chosen:    ${chosen.path} (${kind}, for ${chosen.builtFor})`);
    if (chosen.builtAgainst) out.push(`  built against: ${chosen.builtAgainst}`);
  } else {
    out.push(`  chosen:    none${r.addon.available.length ? '' : ' (no source build and no prebuild for this platform)'}`);
  }
  for (const a of r.addon.rejected) out.push(`  not used:  ${a.path} with ${a.libtorch}: ${a.reason}`);
  if (r.load.ok) out.push('  load:      ok');
  else out.push(`  load:      failed, ${r.load.code}:`, ...r.load.message.split('\n').map((l) => `    ${l}`));
  out.push('');

  out.push('runtime');
  if (r.runtime) {
    out.push(
      `  built for: libtorch ${r.runtime.torchVersion} (${r.runtime.cxx11Abi ? 'C++11' : 'pre-C++11'} ABI, ${r.runtime.compute === 'cuda' ? 'CUDA' : 'CPU'})`,
    );
  }
  out.push(`  threads:   ${r.threads.intraOp === null ? '?' : r.threads.intraOp} intra-op, ${r.threads.cpus} CPUs`);
  out.push(
    `  BLAS:      ${r.blas.kind}${r.blas.library ? ` (${r.blas.library})` : ''}${r.blas.buildInfo ? `, libtorch built with BLAS_INFO=${r.blas.buildInfo}` : ''}`,
  );
  if (r.attention) {
    out.push(
      `  attention: fused kernel ${r.attention.fused ? 'on' : 'off'}, ${r.attention.simd} (CPU runs ${r.attention.available.join(', ')}), GEMM ${r.attention.gemm}`,
    );
  }
  const ma = r.modelAttention;
  if (ma?.ok) {
    const s = ma.sites;
    out.push(
      `  fused:     ${s.unet} attention site(s) in unet.pt, ${s.textEncoder} in text_encoder.pt, ${s.vaeEncoder} in vae_encoder.pt, ${s.vaeDecoder} in vae_decoder.pt (${ma.path})`,
    );
  } else if (ma) {
    out.push(`  fused:     ? (${ma.path} did not load: ${ma.code})`);
  }
  out.push('');

  out.push('devices');
  for (const d of r.devices) out.push(`  ${d.device.padEnd(9)}  ${d.name}: ${gib(d.totalBytes)} total, ${gib(d.freeBytes)} free`);
  if (!r.cuda.available) out.push(`  cuda       not available: ${r.cuda.reason}`);
  out.push('');

  out.push('default model');
  const m = r.model;
  out.push(`  path:      ${m.path}${m.exists ? '' : ' (missing)'}`);
  if (m.exists) out.push(`  model:     ${m.name ?? 'unnamed'}, ${m.dtype ?? '?'} weights, ${gib(m.sizeBytes)}`);
  out.push('');

  if (r.problems.length) out.push('problems', ...r.problems.map((p) => `  - ${p}`));
  else out.push('no problems found');
  return `${out.join('\n')}\n`;
}
