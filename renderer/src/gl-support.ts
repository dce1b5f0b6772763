// What WebGL the browser offers. A software WebGL (SwiftShader, llvmpipe: VMs, remote desktops, headless test
// browsers) is slower than canvas 2D for both the slide and the spots, so the app then draws with canvas 2D.

export interface GlSupport {
  readonly webgl2: boolean;
  /** Rendered on the CPU. */
  readonly software: boolean;
  readonly renderer: string | null;
}

const SOFTWARE = /swiftshader|llvmpipe|softpipe|software|basic render|offscreen/i;

export function probeWebGl(): GlSupport {
  const gl = document.createElement('canvas').getContext('webgl2');
  if (!gl) return { webgl2: false, software: false, renderer: null };
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  gl.getExtension('WEBGL_lose_context')?.loseContext();
  return { webgl2: true, software: SOFTWARE.test(renderer), renderer };
}
