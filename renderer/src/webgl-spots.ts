// WebGL2 spot painter: one instanced draw of quads, each shaded as a circle from its distance to the centre
// (an SDF disc with an antialiased rim). Positions are uploaded once; colours live in their own RGBA8 buffer,
// rewritten on a colour change; a frame only sets the view uniforms. Survives context loss by re-uploading.

import { fitCanvas, RING_RGB, type PaintStyle, type SpotPainter } from './spot-painter.js';
import type { ViewTransform } from './view-transform.js';

const VERTEX = `#version 300 es
layout(location = 0) in vec2 a_corner;
layout(location = 1) in vec2 a_centre;
layout(location = 2) in vec4 a_colour;
uniform vec2 u_origin;
uniform mat2 u_linear;
uniform vec2 u_viewport;
uniform float u_radius;
uniform float u_pad;
uniform float u_ratio;
uniform int u_selected;
out vec2 v_local;
out vec4 v_colour;
flat out int v_selected;
void main() {
  v_selected = gl_InstanceID == u_selected ? 1 : 0;
  v_colour = a_colour;
  if (a_colour.a == 0.0) {
    // Hidden: a degenerate quad outside the clip volume.
    v_local = vec2(0.0);
    gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
    return;
  }
  float extent = u_radius + u_pad + (v_selected == 1 ? 6.0 * u_ratio : 0.0);
  vec2 p = u_origin + u_linear * a_centre + a_corner * extent;
  v_local = a_corner * extent;
  gl_Position = vec4(p.x / u_viewport.x * 2.0 - 1.0, 1.0 - p.y / u_viewport.y * 2.0, 0.0, 1.0);
}`;

const FRAGMENT = `#version 300 es
precision highp float;
in vec2 v_local;
in vec4 v_colour;
flat in int v_selected;
uniform float u_radius;
uniform float u_ring;
uniform float u_opacity;
uniform float u_ratio;
uniform vec3 u_dark;
out vec4 outColour;

// Straight-alpha colour over a premultiplied one.
vec4 over(vec4 dst, vec3 rgb, float a) {
  return vec4(rgb * a, a) + dst * (1.0 - a);
}

// Coverage of a ring of half-width h around radius c, antialiased over one device pixel.
float band(float d, float c, float h) {
  return 1.0 - smoothstep(h - 0.5, h + 0.5, abs(d - c));
}

void main() {
  float d = length(v_local);
  float r = u_radius;
  vec4 c = vec4(0.0);
  if (v_colour.a > 0.75) {
    c = over(c, v_colour.rgb, (1.0 - smoothstep(r - 0.5, r + 0.5, d)) * u_opacity);
    if (u_ring > 0.0) c = over(c, v_colour.rgb, band(d, r - u_ring * 0.5, u_ring * 0.5) * min(1.0, u_opacity + 0.3));
  } else {
    // Outline only: a dark ring on a light halo.
    float h = max(u_ring, 0.75 * u_ratio) * 0.5;
    c = over(c, vec3(1.0), band(d, r, h + 0.75 * u_ratio) * 0.75);
    c = over(c, u_dark, band(d, r, h) * 0.9);
  }
  if (v_selected == 1) {
    c = over(c, vec3(1.0), band(d, r + 2.5 * u_ratio, 1.25 * u_ratio));
    c = over(c, u_dark, band(d, r + 4.5 * u_ratio, 1.0 * u_ratio));
  }
  if (c.a < 0.004) discard;
  outColour = c;
}`;

type Uniform =
  | 'u_origin'
  | 'u_linear'
  | 'u_viewport'
  | 'u_radius'
  | 'u_pad'
  | 'u_ratio'
  | 'u_selected'
  | 'u_ring'
  | 'u_opacity'
  | 'u_dark';
const UNIFORMS: readonly Uniform[] = [
  'u_origin',
  'u_linear',
  'u_viewport',
  'u_radius',
  'u_pad',
  'u_ratio',
  'u_selected',
  'u_ring',
  'u_opacity',
  'u_dark',
];

interface Resources {
  readonly program: WebGLProgram;
  readonly vao: WebGLVertexArrayObject;
  readonly positions: WebGLBuffer;
  readonly colours: WebGLBuffer;
  readonly uniforms: Record<Uniform, WebGLUniformLocation | null>;
}

export class WebGlSpotPainter implements SpotPainter {
  readonly kind = 'webgl';
  private readonly gl: WebGL2RenderingContext;
  private resources: Resources | null = null;
  private xy: Float32Array = new Float32Array(0);
  private colours: Uint8Array = new Uint8Array(0);
  private count = 0;
  private lost = false;
  private readonly onLost = (event: Event) => {
    event.preventDefault();
    this.lost = true;
    this.resources = null;
  };
  private readonly onRestored = () => {
    this.lost = false;
    this.init();
    this.upload();
    this.restored?.();
  };

  /** Throws where WebGL2 or the shaders are unavailable: the overlay then falls back to canvas 2D. */
  constructor(
    readonly canvas: HTMLCanvasElement,
    private readonly restored?: () => void,
  ) {
    const gl = canvas.getContext('webgl2', {
      alpha: true,
      premultipliedAlpha: true,
      antialias: false,
      depth: false,
      stencil: false,
      preserveDrawingBuffer: false,
    });
    if (!gl) throw new Error('WebGL2 is not available');
    this.gl = gl;
    this.init();
    canvas.addEventListener('webglcontextlost', this.onLost);
    canvas.addEventListener('webglcontextrestored', this.onRestored);
  }

  setPositions(xy: Float32Array): void {
    this.xy = xy;
    this.count = xy.length / 2;
    this.colours = new Uint8Array(this.count * 4);
    this.upload();
  }

  setColours(colours: Uint8Array): void {
    if (colours.length !== this.count * 4)
      throw new Error(`colours for ${colours.length / 4} spots, not ${this.count}`);
    this.colours = colours;
    const { gl, resources } = this;
    if (!resources || this.lost) return;
    gl.bindBuffer(gl.ARRAY_BUFFER, resources.colours);
    gl.bufferSubData(gl.ARRAY_BUFFER, 0, colours);
  }

  paint(view: ViewTransform, style: PaintStyle): void {
    const { gl, resources } = this;
    if (!resources || this.lost) return;
    fitCanvas(this.canvas, view);
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (this.count === 0) return;
    const k = view.ratio;
    const radius = style.radius * k;
    const u = resources.uniforms;
    gl.useProgram(resources.program);
    gl.uniform2f(u.u_origin, view.ox * k, view.oy * k);
    gl.uniformMatrix2fv(u.u_linear, false, [view.ax * k, view.ay * k, view.bx * k, view.by * k]);
    gl.uniform2f(u.u_viewport, this.canvas.width, this.canvas.height);
    gl.uniform1f(u.u_radius, radius);
    gl.uniform1f(u.u_pad, 2 * k);
    gl.uniform1f(u.u_ratio, k);
    gl.uniform1i(u.u_selected, style.selected);
    // A rim only where spots are big enough to show one.
    gl.uniform1f(u.u_ring, radius >= 3 * k ? 1.25 * k : 0);
    gl.uniform1f(u.u_opacity, style.opacity);
    gl.uniform3f(u.u_dark, RING_RGB[0] / 255, RING_RGB[1] / 255, RING_RGB[2] / 255);
    gl.bindVertexArray(resources.vao);
    gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, this.count);
    gl.bindVertexArray(null);
  }

  clear(): void {
    if (this.lost) return;
    this.gl.clearColor(0, 0, 0, 0);
    this.gl.clear(this.gl.COLOR_BUFFER_BIT);
  }

  destroy(): void {
    this.canvas.removeEventListener('webglcontextlost', this.onLost);
    this.canvas.removeEventListener('webglcontextrestored', this.onRestored);
    const { gl, resources } = this;
    if (resources && !this.lost) {
      gl.deleteBuffer(resources.positions);
      gl.deleteBuffer(resources.colours);
      gl.deleteVertexArray(resources.vao);
      gl.deleteProgram(resources.program);
    }
    this.resources = null;
    this.canvas.remove();
  }

  private init(): void {
    const { gl } = this;
    const program = link(gl, compile(gl, gl.VERTEX_SHADER, VERTEX), compile(gl, gl.FRAGMENT_SHADER, FRAGMENT));
    const vao = gl.createVertexArray();
    const corners = gl.createBuffer();
    const positions = gl.createBuffer();
    const colours = gl.createBuffer();
    gl.bindVertexArray(vao);
    gl.bindBuffer(gl.ARRAY_BUFFER, corners);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
    gl.bindBuffer(gl.ARRAY_BUFFER, positions);
    gl.enableVertexAttribArray(1);
    gl.vertexAttribPointer(1, 2, gl.FLOAT, false, 0, 0);
    gl.vertexAttribDivisor(1, 1);
    gl.bindBuffer(gl.ARRAY_BUFFER, colours);
    gl.enableVertexAttribArray(2);
    gl.vertexAttribPointer(2, 4, gl.UNSIGNED_BYTE, true, 0, 0);
    gl.vertexAttribDivisor(2, 1);
    gl.bindVertexArray(null);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    const uniforms = Object.fromEntries(UNIFORMS.map((name) => [name, gl.getUniformLocation(program, name)])) as Record<
      Uniform,
      WebGLUniformLocation | null
    >;
    this.resources = { program, vao, positions, colours, uniforms };
  }

  private upload(): void {
    const { gl, resources } = this;
    if (!resources || this.lost) return;
    gl.bindBuffer(gl.ARRAY_BUFFER, resources.positions);
    gl.bufferData(gl.ARRAY_BUFFER, this.xy, gl.STATIC_DRAW);
    gl.bindBuffer(gl.ARRAY_BUFFER, resources.colours);
    gl.bufferData(gl.ARRAY_BUFFER, this.colours, gl.DYNAMIC_DRAW);
  }
}

function compile(gl: WebGL2RenderingContext, type: number, source: string): WebGLShader {
  const shader = gl.createShader(type);
  if (!shader) throw new Error('cannot create a shader');
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
    throw new Error(`spot shader: ${gl.getShaderInfoLog(shader) ?? 'does not compile'}`);
  }
  return shader;
}

function link(gl: WebGL2RenderingContext, vertex: WebGLShader, fragment: WebGLShader): WebGLProgram {
  const program = gl.createProgram();
  gl.attachShader(program, vertex);
  gl.attachShader(program, fragment);
  gl.linkProgram(program);
  gl.deleteShader(vertex);
  gl.deleteShader(fragment);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
    throw new Error(`spot shader: ${gl.getProgramInfoLog(program) ?? 'does not link'}`);
  }
  return program;
}
