export {
  adapterError,
  type FastCall,
  type FastPathHooks,
  type FastRequest,
  type FastResponse,
  type UnaryEntry,
  unaryFastPath,
} from "./unary-fast-path.ts";
