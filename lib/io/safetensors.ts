/**
 * safetensors (https://huggingface.co/docs/safetensors): the file format of everything torchedit
 * saves, readable from Python without torchedit. Layout: u64 little-endian header length, a JSON
 * header `{ name: { dtype, shape, data_offsets }, __metadata__: { string: string } }`, then the
 * raw little-endian bytes. The format is small and fixed; no npm package implements it for
 * Node without a browser/WebAssembly runtime, so it is written here, once.
 */
import { open, readFile, rename } from 'node:fs/promises';
import { TorchEditError } from '../errors.js';
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

/** Reads a whole safetensors file into CPU arrays (aligned copies, so any dtype can be viewed). */
export async function readSafetensors(path: string): Promise<SafetensorsContents> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'ERR_FILE_NOT_FOUND' : 'ERR_FILE_FORMAT';
    throw new TorchEditError(code, `Cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (bytes.length < 8) throw corrupt(path, 'shorter than its 8-byte header length');
  const headerLength = Number(bytes.readBigUInt64LE(0));
  if (headerLength > bytes.length - 8) throw corrupt(path, 'header length exceeds the file');
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  } catch {
    throw corrupt(path, 'header is not JSON');
  }
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, RawTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const { dtype: code, shape, data_offsets: offsets } = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const dtype = dtypes[code];
    if (!dtype) throw corrupt(path, `tensor ${name} has unsupported dtype ${code}`);
    const ArrayType = arrays[dtype];
    const numel = shape.reduce((a, b) => a * b, 1);
    const [begin, end] = offsets;
    if (end - begin !== numel * ArrayType.BYTES_PER_ELEMENT || dataStart + end > bytes.length) {
      throw corrupt(path, `tensor ${name} has inconsistent offsets`);
    }
    const copy = new ArrayBuffer(end - begin);
    new Uint8Array(copy).set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, { dtype, shape, data: new ArrayType(copy, 0, numel) });
  }
  return { tensors, metadata };
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
  const handle = await open(path, 'r');
  try {
    const { buffer: prefix, bytesRead } = await handle.read(Buffer.alloc(8), 0, 8, 0);
    if (bytesRead < 8) throw corrupt(path, 'shorter than its 8-byte header length');
    const length = Number(prefix.readBigUInt64LE(0));
    if (length > (await handle.stat()).size - 8) throw corrupt(path, 'header length exceeds the file');
    const { buffer } = await handle.read(Buffer.alloc(length), 0, length, 8);
    let header: { __metadata__?: Record<string, string> };
    try {
      header = JSON.parse(buffer.toString('utf8'));
    } catch {
      throw corrupt(path, 'header is not JSON');
    }
    return header.__metadata__ ?? {};
  } finally {
    await handle.close();
  }
}
