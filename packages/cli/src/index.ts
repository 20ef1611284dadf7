export type {
  AtomEntry,
  AtomFactory,
  AtomkitConfig,
  DeclaredAtom,
  HostEntry,
  LoadedConfig,
  VarSpec,
  VarSpecs,
  Vars,
} from "./config";
export { CONFIG_NAMES, defineAtom, defineConfig, loadConfig } from "./config";
export { EXIT } from "./exit-codes";
export { HELP, main } from "./main";
export type { Renderer, RenderOptions } from "./render";
export { createRenderer, pickMode } from "./render";
