// The opt-out flow in a real browser: Debian's chromium driven by playwright-core.
// Run by tests/test_browser_simulator.py, which starts the bot, the stand-in and the dashboard and
// passes their addresses in the environment. Exits non-zero (with the reason) on the first failure.
//
// 1. simulator: write STOP as customer A, tap "Yes, stop them", see the bot confirm;
//    a promo to A is then refused because A opted out;
// 2. simulator: customer B gets the promo template and taps its "Stop promotions" quick reply,
//    then confirms;
// 3. simulator: customer C, a username customer whose phone is hidden (the switch), writes STOP
//    and confirms: every webhook carries only their BSUID and username;
// 4. dashboard: A's profile shows OPT_OUT (when and how), the tag filter finds A, the chart has bars;
//    a search by C's username finds C, whose profile lists the BSUID and the opt-out.
// A's profile name is markup on purpose: it must show as text, and no script of it may run.
import { check, env, launchChromium } from "./chromium.mjs";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const BASE = env("DASHBOARD_URL");
const TOKEN = env("ADMIN_TOKEN");
const CUSTOMER_A = env("CUSTOMER_A");
const CUSTOMER_B = env("CUSTOMER_B");
const NAME_A = env("CUSTOMER_A_NAME");
const BSUID_C = env("CUSTOMER_C_BSUID");
const USERNAME_C = env("CUSTOMER_C_USERNAME");
const SHOTS = env("SCREENSHOTS");
const TIMEOUT = 90_000; // a turn on a cold Rasa server on a busy 2-core machine

mkdirSync(SHOTS, { recursive: true });
const problems = [];

const browser = await launchChromium();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  // Any script error, any dialog (e.g. alert() from a name) and any refused resource (a CSP
  // violation, a CDN) is a failure.
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("dialog", async (dialog) => {
    problems.push(`unexpected dialog: ${dialog.message()}`);
    await dialog.dismiss();
  });
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`${response.status()} for ${response.url()}`);
  });
  page.on("request", (request) => {
    if (!request.url().startsWith(BASE)) problems.push(`request outside the dashboard: ${request.url()}`);
  });

  // --- 1. customer A writes STOP and confirms ---------------------------------------------------
  const query = new URLSearchParams({ token: TOKEN, wa_id: CUSTOMER_A, name: NAME_A });
  await page.goto(`${BASE}/simulator?${query}`);
  check(!page.url().includes("token="), `the token stays in the address: ${page.url()}`);
  await page.getByRole("status").filter({ hasText: "online" }).waitFor();

  const chat = page.getByRole("log", { name: "Conversation" });
  await page.getByLabel("Message").fill("STOP");
  await page.getByLabel("Message").press("Enter");
  const confirm = chat.getByRole("button", { name: "Yes, stop them" });
  await confirm.waitFor();
  await page.screenshot({ path: join(SHOTS, "simulator-confirmation.png") });
  // Keyboard operable: focus the reply button and press Enter.
  await confirm.focus();
  await page.keyboard.press("Enter");
  await chat.getByText("you won't receive marketing messages").waitFor();
  const ticks = await chat.locator(".msg.in .tick.delivered").count();
  check(ticks === 2, `expected both customer messages delivered (✓✓), saw ${ticks}`);

  await page.getByRole("button", { name: "Send a promo template" }).click();
  await chat.getByText("Promo not sent: this customer opted out").waitFor();
  await page.screenshot({ path: join(SHOTS, "simulator-opted-out.png") });

  // --- 2. customer B taps "Stop promotions" on the promo template -------------------------------
  await page.getByLabel("Profile name").fill("Bea");
  await page.getByLabel("WhatsApp number (wa_id)").fill(CUSTOMER_B);
  await page.getByLabel("WhatsApp number (wa_id)").press("Tab"); // change event: a new conversation
  await page.getByRole("button", { name: "Send a promo template" }).click();
  const stopPromotions = chat.getByRole("button", { name: "Stop promotions" });
  await stopPromotions.waitFor();
  await chat.getByText("20% off all shoes").waitFor();
  await page.screenshot({ path: join(SHOTS, "simulator-template.png") });
  await stopPromotions.click();
  await chat.getByRole("button", { name: "Yes, stop them" }).click();
  await chat.getByText("you won't receive marketing messages").waitFor();

  // --- 3. customer C, phone hidden, writes STOP and confirms -------------------------------------
  await page.getByLabel("Profile name").fill("Cleo");
  await page.getByLabel("Username customer, phone hidden").check(); // a new conversation
  check(await page.getByLabel("WhatsApp number (wa_id)").isDisabled(), "the number is still in use");
  await page.getByLabel("BSUID (user_id)").fill(BSUID_C);
  await page.getByLabel("BSUID (user_id)").press("Tab");
  await page.getByLabel("Username", { exact: true }).fill(USERNAME_C);
  await page.getByLabel("Username", { exact: true }).press("Tab");
  check(new URL(page.url()).searchParams.get("user_id") === BSUID_C, `no BSUID in ${page.url()}`);
  await page.getByLabel("Message").fill("STOP");
  await page.getByLabel("Message").press("Enter");
  await chat.getByRole("button", { name: "Yes, stop them" }).click();
  await chat.getByText("you won't receive marketing messages").waitFor();
  await page.screenshot({ path: join(SHOTS, "simulator-username-customer.png") });
  const profileHref = await page.getByRole("link", { name: "Open this customer's profile" }).getAttribute("href");
  check(profileHref === `/customers/${BSUID_C}`, `the profile link is ${profileHref}`);

  // --- 4. the dashboard -----------------------------------------------------------------------
  await page.goto(`${BASE}/customers/${CUSTOMER_A}`);
  await page.getByRole("heading", { level: 1, name: NAME_A }).waitFor();
  const banner = page.locator("#opt-out");
  await banner.getByText("OPT_OUT").waitFor();
  const bannerText = await banner.innerText();
  check(/Added \d{4}-\d\d-\d\d \d\d:\d\d UTC/.test(bannerText), `no time in the banner: ${bannerText}`);
  check(bannerText.includes("the customer wrote it"), `no source in the banner: ${bannerText}`);
  await page.getByRole("heading", { name: "Consent history" }).waitFor();
  await page.getByRole("cell", { name: "Opted out of marketing" }).waitFor();
  await page.getByText("From Rasa's conversation store.").waitFor();
  await page.getByText("understood as opt_out").first().waitFor();
  // Read-only for consent: the only form that posts is "Log out".
  const postForms = await page.$$eval("form", (forms) =>
    forms.filter((f) => f.method === "post").map((f) => new URL(f.action).pathname),
  );
  check(JSON.stringify(postForms) === '["/logout"]', `forms that post: ${postForms}`);
  await page.screenshot({ path: join(SHOTS, "dashboard-profile.png"), fullPage: true });

  await page.goto(`${BASE}/customers`);
  await page.getByLabel("Tag").selectOption("OPT_OUT");
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/tag=OPT_OUT/);
  await page.getByRole("row").filter({ hasText: `+${CUSTOMER_A}` }).getByRole("link", { name: NAME_A }).waitFor();
  await page.getByRole("row").filter({ hasText: `+${CUSTOMER_B}` }).getByRole("link", { name: "Bea" }).waitFor();
  await page.screenshot({ path: join(SHOTS, "dashboard-customers.png"), fullPage: true });

  await page.getByLabel("Name, username, number or BSUID").fill("@" + USERNAME_C);
  await page.getByLabel("Tag").selectOption("");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByText("1 customer found.").waitFor();
  await page.getByRole("row").filter({ hasText: BSUID_C }).getByRole("link", { name: "Cleo" }).click();
  await page.locator("#opt-out").getByText("OPT_OUT").waitFor();
  const identities = page.getByRole("table", { name: /Identifiers WhatsApp uses/ });
  await identities.getByRole("row").filter({ hasText: BSUID_C }).filter({ hasText: "active" }).waitFor();
  check((await identities.getByRole("row").count()) === 2, "C has more than their BSUID");
  await page.screenshot({ path: join(SHOTS, "dashboard-username-profile.png"), fullPage: true });

  await page.getByRole("link", { name: "Opt-outs" }).click();
  const chart = page.getByRole("img", { name: /Opt-outs, last 30 days/ });
  await chart.waitFor();
  const bars = await chart.locator("rect.bar[height]:not([height='0.0'])").count();
  check(bars >= 1, "the chart shows no opt-out");
  await page.screenshot({ path: join(SHOTS, "dashboard-opt-outs.png"), fullPage: true });

  check(problems.length === 0, problems.join("\n"));
  console.log("browser flow passed; screenshots in", SHOTS);
} finally {
  await browser.close();
}
