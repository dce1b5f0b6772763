import { mount } from 'svelte';
import App from './App.svelte';
import { createApi } from './api-client.js';
import { probeWebGl } from './gl-support.js';
import './app.css';

// How the slide and the spots are drawn. `?drawer=` (OpenSeadragon) and `?overlay=` (spots) take canvas or webgl;
// otherwise: canvas 2D for both where WebGL is missing or rendered in software (and OpenSeadragon's canvas drawer
// under automation), WebGL where a GPU draws it.
const params = new URLSearchParams(window.location.search);
const choice = (name: string) => {
  const value = params.get(name);
  return value === 'canvas' || value === 'webgl' ? value : null;
};
const gl = probeWebGl();
const drawer = choice('drawer') ?? (navigator.webdriver || gl.software ? 'canvas' : null);
const overlay = choice('overlay') ?? (gl.webgl2 && !gl.software ? 'webgl' : 'canvas');

const target = document.getElementById('app');
if (!target) throw new Error('no #app element');
mount(App, { target, props: { api: createApi(), drawer, overlay } });
