import { describe, expect, it } from "vitest";
import { nextRun, requireCron, requireTimezone } from "../../src/modules/schedules/cron.js";

describe("schedule cron expressions", () => {
  it("accepts five fields, normalizing spaces", () => {
    expect(requireCron("  0   6 * *  1-5 ", "input.cron", "UTC")).toBe("0 6 * * 1-5");
  });

  it.each([
    ["", "0 field(s)"],
    ["0 0 6 * * *", "6 field(s)"],
    ["every day", "2 field(s)"],
    ["61 * * * *", "is not a cron expression"],
    ["* * * 13 *", "is not a cron expression"],
  ])("refuses %j, naming the field", (cron, message) => {
    expect(() => requireCron(cron, "input.cron", "UTC")).toThrow(/^input\.cron: .*/);
    expect(() => requireCron(cron, "input.cron", "UTC")).toThrow(message);
  });

  it("knows IANA time zones and refuses others", () => {
    expect(requireTimezone(" Europe/Paris ", "input.timezone")).toBe("Europe/Paris");
    expect(() => requireTimezone("Mars/Olympus", "input.timezone")).toThrow(/^input\.timezone: "Mars\/Olympus" is not a time zone/);
  });

  it("gives the next time strictly after the given one, in the schedule's time zone", () => {
    expect(nextRun("0 6 * * *", "UTC", new Date("2026-03-01T05:59:00Z")).toISOString()).toBe("2026-03-01T06:00:00.000Z");
    expect(nextRun("0 6 * * *", "UTC", new Date("2026-03-01T06:00:00Z")).toISOString()).toBe("2026-03-02T06:00:00.000Z");
    // 06:00 in Paris is 05:00 UTC in winter, 04:00 UTC in summer.
    expect(nextRun("0 6 * * *", "Europe/Paris", new Date("2026-01-10T00:00:00Z")).toISOString()).toBe("2026-01-10T05:00:00.000Z");
    expect(nextRun("0 6 * * *", "Europe/Paris", new Date("2026-07-10T00:00:00Z")).toISOString()).toBe("2026-07-10T04:00:00.000Z");
    // Weekdays only: Saturday 2026-03-07 → Monday 2026-03-09.
    expect(nextRun("30 7 * * 1-5", "UTC", new Date("2026-03-07T00:00:00Z")).toISOString()).toBe("2026-03-09T07:30:00.000Z");
  });
});
