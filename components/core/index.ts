/** The pure core: model, config validation, address math, renderers and the registry of pushed files (no Pulumi types). */
export * from "./model";
export * from "./vultr";
export * from "./config";
export * from "./vultr";
export * from "./damping";
export * as addressing from "./addressing";
export { IpAddress, IpPrefix, Family } from "./addressing";
export * from "./spec-json";
export * from "./render";
export * from "./artifacts";
