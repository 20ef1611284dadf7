export type { AtomkitConfig, LoadedConfig, Vars } from "./config";
export { CONFIG_NAMES, defineConfig, loadConfig } from "./config";
export { EXIT } from "./exit-codes";
export { HELP, main } from "./main";
export type { Renderer, RenderOptions } from "./render";
export { createRenderer, pickMode } from "./render";
