/**
 * Reads the dynamic section of an ELF shared object (SONAME, NEEDED, RPATH/RUNPATH) and scans
 * its dynamic string table, without loading it.
 *
 * Why: whether the addon can link a libtorch is decided by names, not versions — the dynamic
 * linker satisfies the addon's NEEDED `libtorch_cpu.so.1.13` only with a loaded library whose
 * SONAME is exactly that (Debian versions its sonames, pytorch.org's zips and pip wheels do not).
 * Comparing the addon's NEEDED list with the SONAMEs of the libtorch found turns what would be a
 * dynamic-linker error at `require` time into a clear mismatch message before anything loads.
 *
 * Only the few kilobytes that hold the headers and the needed strings are read, so this stays
 * cheap on libtorch_cpu.so (~120 MB). 64-bit little-endian ELF only (x86_64, aarch64); anything
 * else returns null and the callers skip the check.
 */
import { closeSync, openSync, readSync } from 'node:fs';

export interface ElfDynamic {
  soname: string | null;
  needed: string[];
  /** DT_RUNPATH entries (DT_RPATH when there is no RUNPATH), `$ORIGIN` left as is. */
  runpath: string[];
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_STRSZ = 10n;
const DT_SONAME = 14n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;

interface Segment {
  type: number;
  offset: bigint;
  vaddr: bigint;
  filesz: bigint;
}

class ElfFile {
  readonly segments: Segment[] = [];

  private constructor(readonly fd: number) {}

  static open(path: string): ElfFile | null {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return null;
    }
    const elf = new ElfFile(fd);
    try {
      const header = elf.read(0n, 64);
      // \x7fELF, ELFCLASS64, ELFDATA2LSB
      if (header.length < 64 || header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) {
        elf.close();
        return null;
      }
      const phoff = header.readBigUInt64LE(0x20);
      const phentsize = header.readUInt16LE(0x36);
      const phnum = header.readUInt16LE(0x38);
      const table = elf.read(phoff, phentsize * phnum);
      for (let i = 0; i + 56 <= table.length && i < phentsize * phnum; i += phentsize) {
        elf.segments.push({
          type: table.readUInt32LE(i),
          offset: table.readBigUInt64LE(i + 8),
          vaddr: table.readBigUInt64LE(i + 16),
          filesz: table.readBigUInt64LE(i + 32),
        });
      }
      return elf;
    } catch {
      elf.close();
      return null;
    }
  }

  read(offset: bigint, length: number): Buffer {
    const buffer = Buffer.alloc(length);
    const n = readSync(this.fd, buffer, 0, length, offset);
    return buffer.subarray(0, n);
  }

  /** File offset of a virtual address, through the PT_LOAD segment that maps it. */
  fileOffset(vaddr: bigint): bigint | null {
    for (const s of this.segments) {
      if (s.type === PT_LOAD && vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz) return vaddr - s.vaddr + s.offset;
    }
    return null;
  }

  /** A NUL-terminated string at `offset`, read in small chunks. */
  string(offset: bigint): string {
    const parts: Buffer[] = [];
    for (let at = offset; ; at += 256n) {
      const chunk = this.read(at, 256);
      const end = chunk.indexOf(0);
      if (end >= 0 || chunk.length === 0) {
        parts.push(end >= 0 ? chunk.subarray(0, end) : chunk);
        return Buffer.concat(parts).toString('utf8');
      }
      parts.push(chunk);
    }
  }

  /** The dynamic entries as (tag, value) pairs plus the string table's file offset and size. */
  dynamic(): { entries: Array<[bigint, bigint]>; strtab: bigint | null; strsz: bigint } | null {
    const seg = this.segments.find((s) => s.type === PT_DYNAMIC);
    if (!seg) return null;
    const data = this.read(seg.offset, Number(seg.filesz));
    const entries: Array<[bigint, bigint]> = [];
    for (let i = 0; i + 16 <= data.length; i += 16) {
      const tag = data.readBigInt64LE(i);
      if (tag === DT_NULL) break;
      entries.push([tag, data.readBigUInt64LE(i + 8)]);
    }
    const strtabAddr = entries.find(([t]) => t === DT_STRTAB)?.[1];
    const strsz = entries.find(([t]) => t === DT_STRSZ)?.[1] ?? 0n;
    return { entries, strtab: strtabAddr === undefined ? null : this.fileOffset(strtabAddr), strsz };
  }

  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}

/** SONAME, NEEDED and RUNPATH of a shared object (symlinks followed); null if it is not a readable ELF64-LE file. */
export function readElfDynamic(path: string): ElfDynamic | null {
  const elf = ElfFile.open(path);
  if (!elf) return null;
  try {
    const dyn = elf.dynamic();
    if (!dyn || dyn.strtab === null) return null;
    const str = (offset: bigint): string => elf.string(dyn.strtab! + offset);
    const result: ElfDynamic = { soname: null, needed: [], runpath: [] };
    let rpath: string[] = [];
    for (const [tag, value] of dyn.entries) {
      if (tag === DT_NEEDED) result.needed.push(str(value));
      else if (tag === DT_SONAME) result.soname = str(value);
      else if (tag === DT_RUNPATH) result.runpath = str(value).split(':').filter(Boolean);
      else if (tag === DT_RPATH) rpath = str(value).split(':').filter(Boolean);
    }
    if (result.runpath.length === 0) result.runpath = rpath;
    return result;
  } catch {
    return null;
  } finally {
    elf.close();
  }
}

/**
 * Whether the dynamic string table contains `needle` (e.g. `__cxx11`, which appears in every
 * symbol that passes a std::string under the C++11 ABI). Null if the file cannot be read.
 * Reads the table in 1 MiB chunks, stopping at the first hit, and at most `limit` bytes.
 */
export function dynamicStringsInclude(path: string, needle: string, limit = 64 << 20): boolean | null {
  const elf = ElfFile.open(path);
  if (!elf) return null;
  try {
    const dyn = elf.dynamic();
    if (!dyn || dyn.strtab === null) return null;
    const pattern = Buffer.from(needle);
    const size = dyn.strsz < BigInt(limit) ? Number(dyn.strsz) : limit;
    const chunk = 1 << 20;
    for (let at = 0; at < size; at += chunk - pattern.length) {
      const data = elf.read(dyn.strtab + BigInt(at), Math.min(chunk, size - at));
      if (data.includes(pattern)) return true;
      if (data.length < chunk) break;
    }
    return false;
  } catch {
    return null;
  } finally {
    elf.close();
  }
}
