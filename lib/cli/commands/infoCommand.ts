/** `torchedit info`: the bundle's model.json summary, parameter counts, device and the libtorch runtime. */
import { Command } from 'commander';
import { runtimeInfo } from '../../runtime.js';
import { report, round } from '../output.js';
import { withModel } from '../session.js';

/** 1234567 → "1.23M". */
function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

export function infoCommand(): Command {
  return new Command('info')
    .description('Load a model bundle and print its summary: sizes, prediction type, scheduler, parameter counts, device, dtype, libtorch.')
    .addHelpText(
      'after',
      `
Example:
  torchedit info --model ./sd15-bundle --json`,
    )
    .action(async (_flags: unknown, command: Command) => {
      await withModel(command, async (session) => {
        const { model } = session;
        const c = model.config;
        const modules = model.modules();
        let parameters: Record<string, number>;
        try {
          parameters = {
            textEncoder: modules.textEncoder.parameterCount,
            unet: modules.unet.parameterCount,
            vaeEncoder: modules.vaeEncoder.parameterCount,
            vaeDecoder: modules.vaeDecoder.parameterCount,
          };
        } finally {
          for (const m of Object.values(modules)) m.dispose();
        }
        const total = Object.values(parameters).reduce((a, b) => a + b, 0);
        const runtime = runtimeInfo();
        const info = {
          name: c.name,
          path: model.path,
          imageSize: model.imageSize,
          sizeMultiple: model.sizeMultiple,
          sampleSize: c.sampleSize,
          latentChannels: c.latentChannels,
          vaeScaleFactor: c.vaeScaleFactor,
          scalingFactor: c.scalingFactor,
          predictionType: c.predictionType,
          scheduler: c.scheduler,
          textEncoder: c.textEncoder,
          bundleDtype: c.dtype,
          exportedWith: c.exportedWith ?? null,
          parameters: { ...parameters, total },
          device: model.device,
          dtype: model.dtype,
          runtime,
          loadSeconds: round(session.loadSeconds),
        };
        const s = c.scheduler;
        const t = c.textEncoder;
        const rows: [string, string][] = [
          ['name', c.name],
          ['path', model.path],
          ['image size', `${model.imageSize}×${model.imageSize} (sides: multiples of ${model.sizeMultiple})`],
          ['latents', `${c.sampleSize}×${c.sampleSize}×${c.latentChannels}, VAE factor ${c.vaeScaleFactor}, scaling ${c.scalingFactor}`],
          ['prediction', c.predictionType],
          [
            'scheduler',
            `${s.betaSchedule} β ${s.betaStart}–${s.betaEnd}, ${s.numTrainTimesteps} train steps, ${s.timestepSpacing} spacing, offset ${s.stepsOffset}${s.setAlphaToOne ? ', α→1' : ''}`,
          ],
          ['text encoder', `${t.maxLength} tokens × ${t.hiddenSize}`],
          [
            'parameters',
            `${count(total)} (text encoder ${count(parameters.textEncoder)}, UNet ${count(parameters.unet)}, VAE encoder ${count(parameters.vaeEncoder)}, VAE decoder ${count(parameters.vaeDecoder)})`,
          ],
          ['device', model.device],
          ['dtype', c.dtype === model.dtype ? model.dtype : `${model.dtype} (bundle: ${c.dtype})`],
          ['exported with', c.exportedWith?.torch ? `torch ${c.exportedWith.torch}` : 'unknown'],
          [
            'libtorch',
            `${runtime.torchVersion}, ${runtime.cxx11Abi ? 'C++11 ABI' : 'pre-C++11 ABI'}, CUDA ${runtime.cudaAvailable ? `${runtime.cudaDeviceCount} device(s)` : 'not available'}, ${runtime.intraOpThreads} thread(s)`,
          ],
        ];
        // model.json `recommended`: the defaults this model uses in place of the library's
        for (const [group, fields] of Object.entries(c.recommended ?? {})) {
          rows.push([
            `defaults: ${group}`,
            Object.entries(fields as object)
              .map(([k, v]) => `${k} ${JSON.stringify(v)}`)
              .join(', '),
          ]);
        }
        const width = Math.max(...rows.map(([k]) => k.length));
        report(command, info, rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n'), { essential: true });
      });
    });
}
