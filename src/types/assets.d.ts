// Files imported `with { type: "file" }` resolve to a path (embedded in compiled executables).
declare module "swagger-ui-dist/swagger-ui-bundle.js" {
  const path: string;
  export default path;
}
declare module "*.so" {
  const path: string;
  export default path;
}
declare module "*.gguf" {
  const path: string;
  export default path;
}
declare module "*.jinja" {
  const path: string;
  export default path;
}
declare module "*.css" {
  const path: string;
  export default path;
}
