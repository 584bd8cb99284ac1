/*
 * Debian's Chromium through playwright-core (never a downloaded browser), launched the same way by every
 * driver in this directory: headless, no network beyond what the page asks for, muted autoplay allowed.
 */
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const LAUNCH_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required'];

export function launchChromium() {
  return chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
}
