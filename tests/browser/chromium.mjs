// What both browser tests share: Debian's chromium, launched headless with nothing phoning home,
// and the two small checks every step uses.
import { chromium } from "playwright-core";

// A variable the Python side (tests/browser_tools.py) must have set.
export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

export const check = (condition, message) => {
  if (!condition) throw new Error(message);
};

export const launchChromium = () =>
  chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
