// The parts of three.js the level page (airender/export/level/level.js) uses, bundled by scripts/vendor_three.sh
// into one classic script that defines the global THREE (pages then work from file://).
export {
  BufferAttribute, BufferGeometry, Color, DataArrayTexture, DataTexture, DoubleSide, FloatType, GLSL3, HalfFloatType,
  ByteType, IntType, Mesh, NearestFilter, OrthographicCamera, PerspectiveCamera, RawShaderMaterial, RedFormat, RGBAFormat,
  RGBAIntegerFormat, Scene, UnsignedByteType, Vector3, WebGLArrayRenderTarget, WebGLRenderTarget, WebGLRenderer,
  REVISION,
} from "three";
export { OrbitControls } from "three/addons/controls/OrbitControls.js";
