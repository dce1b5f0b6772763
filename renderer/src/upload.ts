// Browser mode's upload: files a browser picked (a folder through <input webkitdirectory>, or one file) sent to
// the core's uploadSection in base64 chunks of at most CHUNK_BYTES a call (the server's body limit is 16 MiB).

import type { OpenPathResult, StudioApi, UploadFile } from './api-types.js';

export const CHUNK_BYTES = 8 * 1024 * 1024;

/** A picked file and its path inside the upload. */
export interface PickedFile {
  readonly file: Blob;
  readonly path: string;
}

/**
 * What the input gave: a folder's files lose their top folder (which names the upload), a lone file keeps its
 * name (and names the upload without its extension).
 */
export function pickedFiles(files: readonly File[]): { name: string; files: PickedFile[] } {
  const inFolder = files.length > 0 && files.every((f) => f.webkitRelativePath.includes('/'));
  if (inFolder) {
    const name = files[0].webkitRelativePath.split('/')[0];
    return {
      name,
      files: files.map((file) => ({ file, path: file.webkitRelativePath.split('/').slice(1).join('/') })),
    };
  }
  const name = files.length === 1 ? files[0].name.replace(/\.[^.]*$/, '') || files[0].name : 'upload';
  return { name, files: files.map((file) => ({ file, path: file.name })) };
}

async function base64(blob: Blob): Promise<string> {
  const url = await new Promise<string>((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error ?? new Error('cannot read the file'));
    reader.readAsDataURL(blob);
  });
  return url.slice(url.indexOf(',') + 1);
}

/** Sends the files in chunks, then has the core open what arrived. */
export async function uploadFiles(
  api: Pick<StudioApi, 'uploadSection'>,
  name: string,
  files: readonly PickedFile[],
  onprogress?: (sent: number, total: number) => void,
): Promise<OpenPathResult> {
  const pieces: { file: Blob; path: string; offset: number; size: number }[] = [];
  for (const { file, path } of files) {
    for (let offset = 0; offset < file.size || (offset === 0 && file.size === 0); offset += CHUNK_BYTES) {
      pieces.push({ file, path, offset, size: Math.min(CHUNK_BYTES, file.size - offset) });
      if (file.size === 0) break;
    }
  }
  const total = pieces.reduce((sum, p) => sum + p.size, 0);
  let sent = 0;
  let uploadId: string | null = null;
  let batch: UploadFile[] = [];
  let batchBytes = 0;
  for (let i = 0; i < pieces.length; i++) {
    const piece = pieces[i];
    const data = await base64(piece.file.slice(piece.offset, piece.offset + piece.size));
    batch.push({ path: piece.path, data, offset: piece.offset });
    batchBytes += piece.size;
    const last = i === pieces.length - 1;
    if (last || batchBytes + (pieces[i + 1]?.size ?? 0) > CHUNK_BYTES) {
      const result = await api.uploadSection(name, batch, { uploadId, done: last });
      uploadId = result.uploadId;
      sent += batchBytes;
      onprogress?.(sent, total);
      if (last) return result;
      batch = [];
      batchBytes = 0;
    }
  }
  throw new Error('nothing to upload');
}
