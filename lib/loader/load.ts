/**
 * Chooses the libtorch and the addon binary that fits it, loads libtorch by absolute path, then
 * the addon — so no LD_LIBRARY_PATH is needed and a missing or mismatched libtorch is a
 * TorchEditError with a stable code instead of a dynamic-linker message.
 *
 * Order: the libtorches found (lib/loader/libtorch.ts) in order of preference; for each, the
 * addons (a source build first, then prebuilds, exact compute match before a CPU addon on a CUDA
 * libtorch). The first libtorch some addon fits wins; a preferred libtorch passed over for want
 * of an addon is reported (a warning at load, a line in `torchedit doctor`), never silent.
 * An explicit libtorch (option, TORCHEDIT_LIBTORCH, LIBTORCH) is the only candidate.
 */
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { join, relative } from 'node:path';
import { TorchEditError } from '../errors.js';
import { describeAddonTags, listAddons, matchAddon, platformDir, type Addon } from './addons.js';
import {
  describeLibtorch,
  LIBRARY_ROLES,
  locateLibtorch,
  pipCudaLibraries,
  type Libtorch,
  type LocateOptions,
  type LocateResult,
} from './libtorch.js';

export interface LoadOptions {
  /** The package root (holds build/ and prebuilds/). */
  root: string;
  /** An explicit libtorch folder: the only place looked at. */
  libtorch?: string;
  env?: NodeJS.ProcessEnv;
  /** Test seams for the search (interpreters, system folders). */
  locate?: Omit<LocateOptions, 'libtorch' | 'env'>;
}

export interface Rejection {
  addon: Addon;
  libtorch: Libtorch;
  reason: string;
}

export interface LoadPlan {
  libtorch: Libtorch;
  addon: Addon;
  /** Libraries loaded before the addon, by absolute path, in this order. */
  preload: string[];
  /** Libtorches preferred over the chosen one but passed over: no addon fits them. */
  passedOver: Libtorch[];
}

export interface LoadInspection {
  root: string;
  located: LocateResult;
  addons: Addon[];
  rejections: Rejection[];
  plan: LoadPlan | null;
  error: TorchEditError | null;
}

/** Everything the loader would decide, without loading anything; never throws. */
export function inspectLoad(options: LoadOptions): LoadInspection {
  const env = options.env ?? process.env;
  const located = locateLibtorch({ ...options.locate, libtorch: options.libtorch, env });
  const addons = listAddons(options.root, env);
  const inspection: LoadInspection = { root: options.root, located, addons, rejections: [], plan: null, error: null };
  if (located.candidates.length === 0) {
    inspection.error = new TorchEditError('ERR_LIBTORCH_NOT_FOUND', notFoundMessage(inspection));
    return inspection;
  }
  if (addons.length === 0) {
    inspection.error = new TorchEditError(
      'ERR_BINDING_LOAD',
      `torchedit's native addon is not built and there is no prebuilt one for ${platformDir()} ` +
        `(looked in ${join(options.root, 'build', 'Release')} and ${join(options.root, 'prebuilds', platformDir())}). ` +
        `Build it: npm rebuild torchedit --build-from-source (needs cmake and g++).`,
    );
    return inspection;
  }
  const passedOver: Libtorch[] = [];
  for (const libtorch of located.candidates) {
    let weak: Addon | null = null;
    for (const addon of addons) {
      const match = matchAddon(addon, libtorch);
      if (!match.ok) {
        inspection.rejections.push({ addon, libtorch, reason: match.reason });
      } else if (match.exact) {
        inspection.plan = { libtorch, addon, preload: preloadList(libtorch), passedOver };
        return inspection;
      } else {
        weak ??= addon;
      }
    }
    if (weak) {
      inspection.plan = { libtorch, addon: weak, preload: preloadList(libtorch), passedOver };
      return inspection;
    }
    passedOver.push(libtorch);
  }
  inspection.error = new TorchEditError('ERR_LIBTORCH_MISMATCH', mismatchMessage(inspection));
  return inspection;
}

/**
 * libtorch's own libraries in dependency order (c10 before torch_cpu before torch), so each
 * one's NEEDED entries are already loaded even when the folder has no RPATH; on a CUDA build
 * libtorch_global_deps first (it pulls in the CUDA libraries, as `import torch` does) and
 * libtorch_cuda — which nothing the addon calls names, so only loading it registers the CUDA
 * backend.
 */
function preloadList(lib: Libtorch): string[] {
  return LIBRARY_ROLES.filter((role) => lib.cuda || (!role.includes('cuda') && role !== 'torch_global_deps'))
    .map((role) => lib.libraries[role]?.path)
    .filter((p): p is string => p !== undefined);
}

// glibc's RTLD_NODELETE: node's os.constants.dlopen lacks it. process.dlopen of a library that
// is not a Node addon loads it, finds no module, throws "Module did not self-register" and
// dlcloses it again — without NODELETE, libc10 alone is unloaded right away (checked here).
const RTLD_NODELETE = 0x1000;

/** Loads the plan's libraries, then the addon. Throws ERR_BINDING_LOAD with the linker's message. */
export function loadPlan(plan: LoadPlan, requireFrom: string): unknown {
  if (process.platform === 'linux') {
    for (const path of plan.preload) {
      // libtorch_global_deps (CUDA builds only) exists to put the CUDA libraries in the global
      // scope, and `import torch` loads it with RTLD_GLOBAL: the same here. It links no GLib.
      const globalDeps = path === plan.libtorch.libraries.torch_global_deps?.path;
      const load = globalDeps ? dlopenGlobal : dlopenLocal;
      try {
        load(path);
      } catch (error) {
        if (globalDeps && plan.libtorch.cudaLibraryDirs.length) {
          // pip's layout where the RPATHs do not reach the nvidia wheels: load them first, as torch does.
          for (const lib of pipCudaLibraries(plan.libtorch.cudaLibraryDirs)) tryDlopen(lib);
          try {
            load(path);
            continue;
          } catch {
            // report the first error below
          }
        }
        throw new TorchEditError(
          'ERR_BINDING_LOAD',
          `libtorch ${describeLibtorch(plan.libtorch)} in ${plan.libtorch.libDir} (${plan.libtorch.origin}) could not be loaded: ` +
            `${(error as Error).message}. Its own dependencies may be missing (Debian/Ubuntu: apt-get install libtorch-dev libopenblas0-pthread); ` +
            'run `npx torchedit doctor` for details.',
          { cause: error },
        );
      }
    }
  }
  try {
    return createRequire(requireFrom)(plan.addon.path);
  } catch (error) {
    throw new TorchEditError(
      'ERR_BINDING_LOAD',
      `Cannot load torchedit's native addon ${plan.addon.path} with libtorch ${describeLibtorch(plan.libtorch)} in ${plan.libtorch.libDir}: ` +
        `${(error as Error).message}. Rebuild it: npm rebuild torchedit --build-from-source.`,
      { cause: error },
    );
  }
}

/**
 * Loads a library by absolute path so the addon's NEEDED entries (matched by soname) resolve to
 * it. RTLD_LOCAL, not GLOBAL: Debian's libtorch pulls in the system GLib (through OpenCV's GTK
 * backend), and a global GLib captures the GLib calls of sharp's libvips, which bundles its own
 * (GLib-GObject-CRITICAL on every image operation). libtorch_global_deps and pip's CUDA
 * libraries, which torch itself loads globally, go through dlopenGlobal.
 */
function dlopenLocal(path: string): void {
  dlopenWith(path, constants.dlopen.RTLD_NOW! | RTLD_NODELETE);
}

function dlopenGlobal(path: string): void {
  dlopenWith(path, constants.dlopen.RTLD_NOW! | constants.dlopen.RTLD_GLOBAL! | RTLD_NODELETE);
}

function dlopenWith(path: string, flags: number): void {
  try {
    process.dlopen({ exports: {} }, path, flags);
  } catch (error) {
    // Loaded (and kept by NODELETE); it just is not a Node addon.
    if (/did not self-register/.test((error as Error).message)) return;
    throw error;
  }
}

function tryDlopen(path: string): void {
  try {
    dlopenGlobal(path);
  } catch {
    // torch ignores the ones it cannot load too; the retry reports what is still missing
  }
}

/** The prebuilds' libtorch requirements, for messages: `libtorch 1.13 (C++11 ABI, CPU)`. */
function neededText(addons: Addon[]): string {
  const needs = [...new Set(addons.filter((a) => a.kind !== 'build').map((a) => describeAddonTags(a.tags)))];
  return needs.length ? needs.join(' or ') : 'a libtorch (the addon is built from source against it)';
}

const FIXES = [
  'Debian/Ubuntu: sudo apt-get install libtorch-dev libopenblas0-pthread',
  "a libtorch folder (pytorch.org's LibTorch zip): export TORCHEDIT_LIBTORCH=/path/to/libtorch",
  "Python's torch: pip install torch, then npm rebuild torchedit --build-from-source",
];

/** ERR_LIBTORCH_NOT_FOUND's message: where it looked and how to get one (README "Errors"). */
export function notFoundMessage(inspection: LoadInspection): string {
  const { located } = inspection;
  const lines = [`libtorch was not found. torchedit needs ${neededText(inspection.addons)}.`, 'Looked in:'];
  for (const step of located.searched)
    lines.push(`  - ${step.source === 'system' || step.source === 'python' ? '' : `${step.source}: `}${step.place}: ${step.result}`);
  if (located.explicit) {
    lines.push(
      `${located.explicit.source === 'option' ? 'The libtorch option' : located.explicit.source} is set, so it is the only place looked at.`,
    );
  }
  lines.push('Fix (one of):', ...FIXES.map((f) => `  - ${f}`));
  if (located.explicit && located.explicit.source !== 'option') {
    lines.push(`  - or unset ${located.explicit.source} to search Python's torch and the system paths`);
  }
  lines.push('Details: npx torchedit doctor');
  return lines.join('\n');
}

/** ERR_LIBTORCH_MISMATCH's message: what was found, what each addon needs, how to fix it. */
export function mismatchMessage(inspection: LoadInspection): string {
  const lines = ['No torchedit addon fits the libtorch found.'];
  for (const lib of inspection.located.candidates) lines.push(`Found: libtorch ${describeLibtorch(lib)} in ${lib.libDir} (${lib.origin})`);
  for (const r of inspection.rejections) {
    const name = relative(inspection.root, r.addon.path) || r.addon.path;
    lines.push(`Needed by ${name}: ${describeAddonTags(r.addon.tags)} — ${r.reason}`);
  }
  lines.push(
    'Fix (one of):',
    '  - build the addon for this libtorch: npm rebuild torchedit --build-from-source (needs cmake and g++)',
    `  - use ${neededText(inspection.addons)}: on Debian 12 sudo apt-get install libtorch-dev, or export TORCHEDIT_LIBTORCH=/path/to/that/libtorch`,
    'Details: npx torchedit doctor',
  );
  return lines.join('\n');
}
