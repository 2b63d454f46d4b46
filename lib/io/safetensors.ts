/**
 * safetensors (https://huggingface.co/docs/safetensors): the file format of everything torchedit
 * saves, readable from Python without torchedit. Layout: u64 little-endian header length, a JSON
 * header `{ name: { dtype, shape, data_offsets }, __metadata__: { string: string } }`, then the
 * raw little-endian bytes. The format is small and fixed; no npm package implements it for
 * Node without a browser/WebAssembly runtime, so it is written here, once.
 */
import { open, readFile, rename } from 'node:fs/promises';
import { TorchEditError } from '../errors.js';
import { notARegularFile } from './regularFile.js';
import { Tensor, type DType, type TypedArray } from '../tensor.js';

const codes: Record<DType, string> = {
  float32: 'F32',
  float64: 'F64',
  float16: 'F16',
  bfloat16: 'BF16',
  int8: 'I8',
  int16: 'I16',
  int32: 'I32',
  int64: 'I64',
  uint8: 'U8',
  bool: 'BOOL',
};
const dtypes = Object.fromEntries(Object.entries(codes).map(([d, c]) => [c, d as DType])) as Record<string, DType>;
const arrays: Record<DType, { BYTES_PER_ELEMENT: number; new (buffer: ArrayBuffer, offset: number, length: number): TypedArray }> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

export interface RawTensor {
  dtype: DType;
  shape: number[];
  data: TypedArray;
}

export interface SafetensorsContents {
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

function corrupt(path: string, why: string): TorchEditError {
  return new TorchEditError('ERR_FILE_FORMAT', `${path} is not a valid safetensors file: ${why}`);
}

/** The largest header read, as the reference implementation's: a bigger one is not a file we wrote. */
const MAX_HEADER_BYTES = 100_000_000;

/** The header length from the first 8 bytes, checked against the file size before anything is allocated. */
function headerLength(path: string, prefix: Buffer, fileSize: number): number {
  const length = prefix.readBigUInt64LE(0);
  if (length > BigInt(Math.min(fileSize - 8, MAX_HEADER_BYTES))) {
    throw corrupt(path, `header length ${length} exceeds the file (${fileSize} bytes) or ${MAX_HEADER_BYTES} bytes`);
  }
  return Number(length);
}

/** The header's JSON: an object, whose `__metadata__`, if any, maps strings to strings. */
function parseHeader(path: string, bytes: Buffer): { entries: [string, unknown][]; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw corrupt(path, 'header is not JSON');
  }
  if (!isObject(header)) throw corrupt(path, 'header is not a JSON object');
  const { __metadata__: metadata = {}, ...tensors } = header;
  if (!isObject(metadata) || !Object.values(metadata).every((v) => typeof v === 'string')) {
    throw corrupt(path, '__metadata__ is not an object of strings');
  }
  return { entries: Object.entries(tensors), metadata: metadata as Record<string, string> };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const isSize = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Checks every entry as the format requires (a known dtype, a shape of non-negative integers, offsets
 * holding exactly its bytes, the tensors tiling the data without gaps or overlaps) and copies each
 * into an aligned array, so any dtype can be viewed.
 */
function readTensors(path: string, entries: [string, unknown][], data: Buffer): Map<string, RawTensor> {
  const spans: [begin: number, end: number, name: string][] = [];
  const tensors = new Map<string, RawTensor>();
  for (const [name, entry] of entries) {
    if (!isObject(entry)) throw corrupt(path, `tensor ${name} is not an object`);
    const { dtype: code, shape, data_offsets: offsets } = entry;
    const dtype = typeof code === 'string' && Object.hasOwn(dtypes, code) ? dtypes[code] : undefined;
    if (!dtype) throw corrupt(path, `tensor ${name} has unsupported dtype ${JSON.stringify(code)}`);
    if (!Array.isArray(shape) || !shape.every(isSize)) throw corrupt(path, `tensor ${name} has an invalid shape`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isSize) || offsets[0] > offsets[1]) {
      throw corrupt(path, `tensor ${name} has invalid data_offsets`);
    }
    const [begin, end] = offsets as [number, number];
    const ArrayType = arrays[dtype];
    const numel = shape.reduce((a: number, b: number) => a * b, 1);
    if (end > data.length || end - begin !== numel * ArrayType.BYTES_PER_ELEMENT) {
      throw corrupt(path, `tensor ${name} has inconsistent offsets`);
    }
    spans.push([begin, end, name]);
    const copy = new ArrayBuffer(end - begin);
    new Uint8Array(copy).set(data.subarray(begin, end));
    tensors.set(name, { dtype, shape: shape as number[], data: new ArrayType(copy, 0, numel) });
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [begin, end, name] of spans) {
    if (begin !== at) throw corrupt(path, `tensor ${name} ${begin < at ? 'overlaps another' : 'leaves a gap before it'}`);
    at = end;
  }
  if (at !== data.length) throw corrupt(path, 'the data holds bytes no tensor uses');
  return tensors;
}

/** Reads a whole safetensors file into CPU arrays; ERR_FILE_FORMAT for anything the format does not allow. */
export async function readSafetensors(path: string): Promise<SafetensorsContents> {
  const bad = await notARegularFile(path);
  if (bad) throw new TorchEditError(bad.missing ? 'ERR_FILE_NOT_FOUND' : 'ERR_FILE_FORMAT', `Cannot read ${bad.why}`, { cause: bad.cause });
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'ERR_FILE_NOT_FOUND' : 'ERR_FILE_FORMAT';
    throw new TorchEditError(code, `Cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (bytes.length < 8) throw corrupt(path, 'shorter than its 8-byte header length');
  const length = headerLength(path, bytes, bytes.length);
  const { entries, metadata } = parseHeader(path, bytes.subarray(8, 8 + length));
  return { tensors: readTensors(path, entries, bytes.subarray(8 + length)), metadata };
}

/** Writes tensors and string metadata; the file appears whole or not at all (write, then rename). */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, RawTensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype: codes[t.dtype], shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8); // data starts 8-aligned
  const headerBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));
  const temporary = `${path}.${process.pid}.partial`;
  // Written piece by piece: a whole UNet's tensors are not concatenated into one more copy.
  const handle = await open(temporary, 'w');
  try {
    await handle.write(prefix);
    await handle.write(headerBytes);
    for (const t of tensors.values()) await handle.write(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  } finally {
    await handle.close();
  }
  await rename(temporary, path);
}

/** Copies a raw tensor into a Tensor handle. */
export function toTensor(raw: RawTensor): Tensor {
  return Tensor.from(raw.data, raw.shape, { dtype: raw.dtype });
}

/** Copies a Tensor handle's data out into a raw tensor. */
export async function fromTensor(tensor: Tensor): Promise<RawTensor> {
  return { dtype: tensor.dtype, shape: tensor.shape, data: await tensor.data() };
}

/** True when the first bytes look like a safetensors header (cheap check before a full read). */
export async function looksLikeSafetensors(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(9), 0, 9, 0);
    return bytesRead === 9 && buffer[8] === 0x7b; // '{'
  } finally {
    await handle.close();
  }
}

/** The `__metadata__` of a safetensors file, reading only its header (ERR_FILE_FORMAT when it has none). */
export async function readSafetensorsMetadata(path: string): Promise<Record<string, string>> {
  const bad = await notARegularFile(path);
  if (bad) throw new TorchEditError(bad.missing ? 'ERR_FILE_NOT_FOUND' : 'ERR_FILE_FORMAT', `Cannot read ${bad.why}`, { cause: bad.cause });
  const handle = await open(path, 'r');
  try {
    const { buffer: prefix, bytesRead } = await handle.read(Buffer.alloc(8), 0, 8, 0);
    if (bytesRead < 8) throw corrupt(path, 'shorter than its 8-byte header length');
    const length = headerLength(path, prefix, (await handle.stat()).size);
    const { buffer } = await handle.read(Buffer.alloc(length), 0, length, 8);
    return parseHeader(path, buffer).metadata;
  } finally {
    await handle.close();
  }
}
