// Authoring helpers shared with every provider (and third-party step kinds) live in core.
export {
  absolutePath,
  checkFields,
  ParamsFieldError,
  show,
  stepError,
  tempBeside,
  tempPrefix,
} from "@atomkit/core";
