// The authoring helpers moved to the kit (`./kit/*`, exported as `@atomkit/core/kit`). This re-export
// keeps core files that still import from here working; new code imports from `./kit/...`.
export { clip, tempBeside, tempPrefix } from "./kit/names";
