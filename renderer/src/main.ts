import { mount } from 'svelte';
import App from './App.svelte';
import { createApi } from './api-client.js';
import './app.css';

// OpenSeadragon's drawer: its own pick (WebGL where it can) in the app; 2D canvas on request (`?drawer=canvas`)
// and under automation, where WebGL is software-rendered and slow.
const requested = new URLSearchParams(window.location.search).get('drawer');
const drawer = requested === 'canvas' || requested === 'webgl' ? requested : navigator.webdriver ? 'canvas' : null;

const target = document.getElementById('app');
if (!target) throw new Error('no #app element');
mount(App, { target, props: { api: createApi(), drawer } });
