// Decoding the API's base64 Float32 arrays (little-endian, as every platform the app runs on).

interface Base64Decoder {
  fromBase64?(text: string): Uint8Array;
}

export function decodeFloat32(base64: string): Float32Array {
  const native = (Uint8Array as unknown as Base64Decoder).fromBase64;
  let bytes: Uint8Array;
  if (native) bytes = native(base64);
  else {
    const text = atob(base64);
    bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  }
  if (bytes.byteLength % 4 !== 0) throw new Error('a Float32 array with a partial value');
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}
