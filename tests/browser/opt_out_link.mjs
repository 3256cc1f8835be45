// The opt-out link of a marketing template, opened on a phone: Debian's chromium driven by
// playwright-core, with JavaScript OFF (the page must work without it).
// Run by tests/test_opt_out_link_browser.py, which starts the bot and its Graph API stand-in, runs
// real broadcasts and passes the links the stand-in received. That test checks the database after;
// this script checks what a customer sees. Exits non-zero (with the reason) on the first failure.
//
// 1. LINK_PHONE (English broadcast): the question names the business and offers both buttons;
//    "Stop marketing messages" -> the done page; opening the link again -> "already unsubscribed";
// 2. LINK_BSUID (a customer known only by a BSUID): the same, to the done page;
// 3. LINK_KEEP: "Keep receiving them" -> "Nothing has changed";
// 4. LINK_SPANISH (a Spanish broadcast): the page, its buttons and the result are in Spanish;
// 5. LINK_PHONE with one character changed: the "does not work" page, 404.
import { check, env, launchChromium } from "./chromium.mjs";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const BUSINESS = env("BUSINESS");
const LINK_PHONE = env("LINK_PHONE");
const LINK_BSUID = env("LINK_BSUID");
const LINK_KEEP = env("LINK_KEEP");
const LINK_SPANISH = env("LINK_SPANISH");
const SHOTS = env("SCREENSHOTS");
const TIMEOUT = 60_000; // a busy 2-core machine; the page itself needs no model
const ORIGIN = new URL(LINK_PHONE).origin;

// A phone: 390 x 844 CSS pixels at 3x (an iPhone 12-15), touch, a mobile user agent.
const PHONE = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 3,
  isMobile: true,
  hasTouch: true,
  javaScriptEnabled: false,
  userAgent:
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 " +
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
};

const ENGLISH = {
  lang: "en",
  question: `Stop marketing messages from ${BUSINESS}?`,
  stop: "Stop marketing messages",
  keep: "Keep receiving them",
  done: "You are unsubscribed",
  kept: "Nothing has changed",
  already: "You are already unsubscribed",
  invalid: "This link does not work",
};
const SPANISH = {
  lang: "es",
  question: `¿Dejar de recibir mensajes de marketing de ${BUSINESS}?`,
  stop: "Dejar de recibirlos",
  keep: "Seguir recibiéndolos",
  done: "Te has dado de baja",
};

mkdirSync(SHOTS, { recursive: true });

const browser = await launchChromium();

// A fresh phone per link (no state carried between customers). Every response of 400 or more,
// every request to another origin and every console error is collected; `expectedStatus` lets
// the bad-link case expect its 404.
async function phone(locale, expectedStatus = 200) {
  const context = await browser.newContext({ ...PHONE, locale });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const problems = [];
  // Chromium reports an error status of the page itself on the console: expected once for a 404.
  const expectedError = `the server responded with a status of ${expectedStatus}`;
  page.on("console", (m) => {
    if (m.type() === "error" && !(expectedStatus !== 200 && m.text().includes(expectedError))) {
      problems.push(`console error: ${m.text()}`);
    }
  });
  page.on("request", (r) => !r.url().startsWith(ORIGIN) && problems.push(`request elsewhere: ${r.url()}`));
  page.on("response", (r) => {
    if (r.status() !== expectedStatus) problems.push(`${r.status()} for ${r.request().method()} ${r.url()}`);
  });
  return { context, page, problems };
}

// Mobile-first: nothing wider than the phone, both buttons on the first screen, tall enough to tap.
async function checkLayout(page, texts) {
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  check(width <= PHONE.viewport.width, `the page is ${width}px wide on a ${PHONE.viewport.width}px phone`);
  for (const name of [texts.stop, texts.keep]) {
    const box = await page.getByRole("button", { name, exact: true }).boundingBox();
    check(box !== null, `no "${name}" button`);
    check(box.height >= 48, `"${name}" is ${box.height}px tall (48px wanted)`);
    check(box.y + box.height <= PHONE.viewport.height, `"${name}" is below the first screen`);
  }
}

async function checkQuestion(page, texts) {
  check((await page.locator("html").getAttribute("lang")) === texts.lang, `the page is not in ${texts.lang}`);
  await page.getByRole("heading", { level: 1, name: texts.question, exact: true }).waitFor();
  check((await page.title()) === texts.question, `title: ${await page.title()}`);
  await checkLayout(page, texts);
}

async function finish({ context, page, problems }, label) {
  const cookies = await context.cookies();
  check(cookies.length === 0, `${label}: the page set cookies: ${JSON.stringify(cookies)}`);
  check(problems.length === 0, `${label}:\n${problems.join("\n")}`);
  await page.close();
  await context.close();
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `opt-out-link-${name}.png`), fullPage: true });
}

try {
  // --- 1. a phone customer confirms, then opens the link again ---------------------------------
  const phoneA = await phone("en-GB");
  await phoneA.page.goto(LINK_PHONE);
  await checkQuestion(phoneA.page, ENGLISH);
  await shot(phoneA.page, "question");
  await phoneA.page.getByRole("button", { name: ENGLISH.stop, exact: true }).tap();
  await phoneA.page.getByRole("heading", { level: 1, name: ENGLISH.done }).waitFor();
  const doneText = await phoneA.page.getByRole("status").innerText();
  check(doneText.includes(BUSINESS), `the done page does not name the business: ${doneText}`);
  check(phoneA.page.url() === LINK_PHONE, `the form went elsewhere: ${phoneA.page.url()}`);
  await shot(phoneA.page, "done");
  await phoneA.page.goto(LINK_PHONE);
  await phoneA.page.getByRole("heading", { level: 1, name: ENGLISH.already }).waitFor();
  check(
    (await phoneA.page.getByRole("button").count()) === 0,
    "an opted-out customer is still offered buttons",
  );
  await shot(phoneA.page, "already");
  await finish(phoneA, "phone customer");

  // --- 2. a customer known only by a BSUID ------------------------------------------------------
  const bsuid = await phone("en-US");
  await bsuid.page.goto(LINK_BSUID);
  await checkQuestion(bsuid.page, ENGLISH);
  await bsuid.page.getByRole("button", { name: ENGLISH.stop, exact: true }).tap();
  await bsuid.page.getByRole("heading", { level: 1, name: ENGLISH.done }).waitFor();
  await shot(bsuid.page, "bsuid-done");
  await finish(bsuid, "BSUID customer");

  // --- 3. "Keep receiving them" --------------------------------------------------------------------
  const keep = await phone("en-US");
  await keep.page.goto(LINK_KEEP);
  await checkQuestion(keep.page, ENGLISH);
  await keep.page.getByRole("button", { name: ENGLISH.keep, exact: true }).tap();
  await keep.page.getByRole("heading", { level: 1, name: ENGLISH.kept }).waitFor();
  await shot(keep.page, "kept");
  await finish(keep, "keep");

  // --- 4. a Spanish customer: the Spanish page, whatever the phone's own language ---------------
  const spanish = await phone("en-US");
  await spanish.page.goto(LINK_SPANISH);
  await checkQuestion(spanish.page, SPANISH);
  await shot(spanish.page, "es-question");
  await spanish.page.getByRole("button", { name: SPANISH.stop, exact: true }).tap();
  await spanish.page.getByRole("heading", { level: 1, name: SPANISH.done }).waitFor();
  await shot(spanish.page, "es-done");
  await finish(spanish, "Spanish customer");

  // --- 5. an altered link ------------------------------------------------------------------------
  const altered = await phone("en-GB", 404);
  const last = LINK_PHONE.at(-1) === "A" ? "B" : "A";
  const response = await altered.page.goto(LINK_PHONE.slice(0, -1) + last);
  check(response.status() === 404, `an altered link answered ${response.status()}`);
  await altered.page.getByRole("heading", { level: 1, name: ENGLISH.invalid }).waitFor();
  check((await altered.page.getByRole("button").count()) === 0, "an altered link offers buttons");
  await shot(altered.page, "invalid");
  await finish(altered, "altered link");

  console.log("opt-out link flow passed; screenshots in", SHOTS);
} finally {
  await browser.close();
}
