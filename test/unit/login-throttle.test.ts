import { describe, expect, it } from "vitest";
import { createLoginThrottle } from "../../src/modules/auth/login-throttle.js";

describe("login throttle", () => {
  it("lets five failures pass, then locks for 1, 2, 4 … seconds, capped at 15 minutes", () => {
    let clock = 0;
    const throttle = createLoginThrottle(() => clock);
    const keys = ["email:a@x"];
    for (let i = 0; i < 5; i++) throttle.failed(keys);
    expect(throttle.retryAfterSeconds(keys)).toBe(0);
    throttle.failed(keys);
    expect(throttle.retryAfterSeconds(keys)).toBe(1);
    throttle.failed(keys);
    expect(throttle.retryAfterSeconds(keys)).toBe(2);
    for (let i = 0; i < 30; i++) throttle.failed(keys);
    expect(throttle.retryAfterSeconds(keys)).toBe(15 * 60);
    clock += 15 * 60 * 1000;
    expect(throttle.retryAfterSeconds(keys)).toBe(0);
  });

  it("counts accounts and addresses apart (an address, maybe a shared proxy, gets 50 free failures), and a success clears the account", () => {
    const throttle = createLoginThrottle(() => 0);
    for (let i = 0; i < 6; i++) throttle.failed(["email:a@x", "address:1.2.3.4"]);
    expect(throttle.retryAfterSeconds(["email:a@x"])).toBe(1);
    expect(throttle.retryAfterSeconds(["email:b@x", "address:1.2.3.4"])).toBe(0);
    for (let i = 0; i < 45; i++) throttle.failed(["address:1.2.3.4"]);
    expect(throttle.retryAfterSeconds(["email:b@x", "address:1.2.3.4"])).toBe(1);
    throttle.succeeded("email:a@x");
    expect(throttle.retryAfterSeconds(["email:a@x"])).toBe(0);
  });
});
