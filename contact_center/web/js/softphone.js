// How the console answers and hangs up calls.
// - "twilio": Twilio's Voice JavaScript SDK (vendored under /static/vendor/twilio-voice-sdk, loaded
//   only when the service has a TwiML App and API key configured) registered with the access token
//   from POST /api/v1/voice/token; calls ring in the browser.
// - "sandbox": the service's built-in Twilio sandbox plays the browser: answering and hanging up
//   drive its simulated agent leg (the same buttons, no audio).
// - "none": calls ring the agent's own phone; the console still pops the card.

import { ApiError, api, request } from "./api.js";

const RING_WAIT_MS = 30000;

class SandboxPhone {
  constructor(base, agentId) {
    this.kind = "sandbox";
    this.identity = `agent-${agentId}`;
    this.base = `${base}/sandbox`;
  }

  async start() {}

  /** The agent may press answer while the caller still hears the greeting: wait for the ring. */
  async waitForRing(callSid) {
    const deadline = Date.now() + RING_WAIT_MS;
    const url = `${this.base}/clients/${encodeURIComponent(this.identity)}/ringing`;
    while (Date.now() < deadline) {
      const { calls } = await request("GET", url);
      if (calls.some((c) => c.parent_call_sid === callSid || c.call_sid === callSid)) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new ApiError(404, "not_ringing", "the call did not reach this browser");
  }

  async answer(callSid) {
    await this.waitForRing(callSid);
    const result = await request("POST", `${this.base}/clients/${encodeURIComponent(this.identity)}/answer`, {
      body: { call_sid: callSid },
    });
    if (result.status !== "in-progress") throw new ApiError(409, "not_answered", `the call is ${result.status}`);
    return result;
  }

  async hangUp(callSid) {
    return request("POST", `${this.base}/calls/${encodeURIComponent(callSid)}/hangup`, { body: { side: "agent" } });
  }
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(script);
  });
}

class TwilioPhone {
  constructor() {
    this.kind = "twilio";
    this.device = null;
    this.incoming = new Map(); // parent CallSid -> Call
    this.active = null;
  }

  async start() {
    await loadScript("/static/vendor/twilio-voice-sdk/twilio.min.js");
    const { token } = await api.post("/voice/token");
    const device = new window.Twilio.Device(token, { closeProtection: true, codecPreferences: ["opus", "pcmu"] });
    device.on("incoming", (call) => {
      const parent = call.parameters.ParentCallSid || call.customParameters.get("ParentCallSid") || call.parameters.CallSid;
      this.incoming.set(parent, call);
      call.on("disconnect", () => {
        this.incoming.delete(parent);
        if (this.active === call) this.active = null;
      });
      call.on("cancel", () => this.incoming.delete(parent));
    });
    device.on("tokenWillExpire", async () => device.updateToken((await api.post("/voice/token")).token));
    await device.register();
    this.device = device;
  }

  /** The agent may press answer while the caller still hears the greeting: wait for the ring. */
  async waitForIncoming(callSid) {
    const deadline = Date.now() + RING_WAIT_MS;
    while (Date.now() < deadline) {
      const call = this.incoming.get(callSid) || [...this.incoming.values()][0];
      if (call) return call;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new ApiError(404, "not_ringing", "no call is ringing in this browser");
  }

  async answer(callSid) {
    const call = await this.waitForIncoming(callSid);
    call.accept();
    this.active = call;
    return { status: "in-progress" };
  }

  async hangUp() {
    if (!this.active) throw new ApiError(409, "no_call", "no call is connected in this browser");
    this.active.disconnect();
    return { status: "completed" };
  }
}

class NoPhone {
  constructor() {
    this.kind = "none";
  }
  async start() {}
  async answer() {
    throw new ApiError(409, "no_softphone", "calls ring your phone: answer it there");
  }
  async hangUp() {
    throw new ApiError(409, "no_softphone", "hang up on your phone");
  }
}

export async function createSoftphone(config, me) {
  let phone;
  if (me.phone) phone = new NoPhone();
  else if (config.softphone === "twilio") phone = new TwilioPhone();
  else if (config.softphone === "sandbox" && config.sandbox_base) phone = new SandboxPhone(config.sandbox_base, me.id);
  else phone = new NoPhone();
  try {
    await phone.start();
  } catch (error) {
    console.warn("softphone unavailable", error);
    phone = new NoPhone();
  }
  return phone;
}
