export type {
  AtomEntry,
  AtomFactory,
  AtomkitConfig,
  DeclaredAtom,
  HostEntry,
  LoadedConfig,
  Vars,
  VarSpec,
  VarSpecs,
} from "./config";
export { CONFIG_NAMES, defineAtom, defineConfig, loadConfig } from "./config";
export { EXIT } from "./exit-codes";
export { HELP, main } from "./main";
export type { Renderer, RenderOptions } from "./render";
export { createRenderer, pickMode } from "./render";
