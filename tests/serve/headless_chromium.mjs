// Debian's Chromium, headless, as the chat page tests drive it through puppeteer-core.
import puppeteer from "puppeteer-core";

export function launchChromium(executablePath) {
  return puppeteer.launch({
    executablePath,
    headless: true,
    // CI runs as root, where Chromium's sandbox cannot start.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    protocolTimeout: 20_000,
  });
}
