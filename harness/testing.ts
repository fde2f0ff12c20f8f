/**
 * `pulumi-anycast/testing`: unit-test your own Pulumi program that uses these components,
 * without a Pulumi CLI or cloud account.
 *
 *     const cloud = await installMockCloud({ project: "edge", stack: "test" });
 *     const network = new AnycastNetwork("anycast", { ... });
 *     await cloud.settled();
 *     cloud.resources.filter((r) => r.type === "vultr:index/instance:Instance");
 *
 * installMockCloud installs Pulumi's mocks with what the components need from the cloud:
 * Vultr instances with addresses (documentation space), Debian 12's OS id, random bytes, real
 * TLS keys and certificates (openssl), a Cloudflare Origin CA, zone ids and Cloudflare's IP
 * ranges. It returns what the mocks recorded: each resource's `type`, `name`, `inputs` and
 * `state` (secrets wrapped: `unwrapSecrets`, `isSecretValue`).
 */
export {
    installMockCloud, MockCloud, MockedResource, isSecretValue, unwrapSecrets, outputValue, mockInstanceAddresses,
    CLOUDFLARE_RANGES_SNAPSHOT,
} from "./mockcloud";
