// Debian's Chromium driven by playwright-core, as the e2e tests and the viewer benchmark start it. The flags keep it
// off the network (this machine has none) and off the GPU (it has none either).

export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];
