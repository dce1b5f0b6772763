// A progress bar on stderr for long CLI work; silent when stderr is not a terminal (pipes, CI logs).

export interface Progress {
  update(done: number, total: number, label?: string): void;
  finish(): void;
}

export function progressBar(title: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { update() {}, finish() {} };
  const started = Date.now();
  let drawn = false;
  return {
    update(done, total, label = '') {
      const width = 28;
      const fraction = total > 0 ? Math.min(1, done / total) : 0;
      const filled = Math.round(fraction * width);
      const elapsed = (Date.now() - started) / 1000;
      const eta = done > 0 && done < total ? ` ETA ${Math.ceil((elapsed / done) * (total - done))}s` : '';
      const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
      stream.write(`\r\x1b[2K${title} ${bar} ${done}/${total}${eta} ${label}`.slice(0, stream.columns ?? 120));
      drawn = true;
    },
    finish() {
      if (drawn) stream.write('\r\x1b[2K');
    },
  };
}
