// Time left (ETA) of a model job, as the training panel and the inference progress show it.

/** `42 s`, `3 min 5 s`: whole seconds, rounded. */
export function duration(seconds: number): string {
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}
