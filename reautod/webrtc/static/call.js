// The browser call page: one WebRTC call to this reautod (reautod/webrtc/page.py).
// Signalling is one POST: the whole offer (ICE candidates gathered) in, the whole answer out.
// The data channel carries the live transcript to the page and "hangup" to the daemon.
"use strict";

const ICE_GATHER_TIMEOUT_MS = 5000;
const $ = (id) => document.getElementById(id);
let call = null; // {pc, mic, channel, statsTimer}

function setStatus(text) {
  $("status").textContent = text;
}

function token() {
  // a token in the URL's fragment (never sent to a server) is kept for this tab only
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem("reautod-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname);
  }
  const typed = $("token").value.trim();
  if (typed) sessionStorage.setItem("reautod-token", typed);
  return sessionStorage.getItem("reautod-token") || "";
}

function addTurn(speaker, text, interrupted) {
  const item = document.createElement("li");
  item.dataset.speaker = speaker;
  item.textContent = (speaker === "agent" ? "Agent: " : "You: ") + text;
  if (interrupted) item.classList.add("interrupted");
  $("transcript").appendChild(item);
  item.scrollIntoView({block: "nearest"});
}

function onMessage(event) {
  let message;
  try {
    message = JSON.parse(event.data);
  } catch {
    return;
  }
  if (message.type === "turn" && typeof message.text === "string") {
    addTurn(message.speaker === "agent" ? "agent" : "caller", message.text, message.interrupted);
  } else if (message.type === "state") {
    setStatus("In call: " + message.state);
  } else if (message.type === "closed") {
    finish("Call ended: " + (message.reason || "ended"));
  }
}

function watchAgentAudio(pc) {
  // the level of the agent's voice as this browser decodes it (inbound RTP statistics)
  let energy = 0;
  return setInterval(async () => {
    const stats = await pc.getStats();
    stats.forEach((report) => {
      if (report.type === "inbound-rtp" && report.kind === "audio") {
        energy = report.totalAudioEnergy || 0;
        $("level").style.width = Math.min(100, (report.audioLevel || 0) * 400) + "%";
      }
    });
    $("level").dataset.energy = String(energy);
  }, 250);
}

async function gathered(pc) {
  if (pc.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, ICE_GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

async function start() {
  $("call").disabled = true;
  $("transcript").replaceChildren();
  setStatus("Opening the microphone…");
  let mic;
  try {
    mic = await navigator.mediaDevices.getUserMedia({audio: true});
  } catch (err) {
    $("call").disabled = false;
    setStatus("No microphone: " + err.message);
    return;
  }
  const pc = new RTCPeerConnection({iceServers: []});
  const channel = pc.createDataChannel("events");
  channel.onmessage = onMessage;
  mic.getAudioTracks().forEach((track) => pc.addTrack(track, mic));
  pc.ontrack = (event) => {
    $("agent-audio").srcObject = event.streams[0] || new MediaStream([event.track]);
  };
  pc.onconnectionstatechange = () => {
    if (call && call.pc === pc && ["failed", "closed"].includes(pc.connectionState)) {
      finish("Call lost: the connection " + pc.connectionState);
    }
  };
  call = {pc, mic, channel, statsTimer: watchAgentAudio(pc)};
  $("hangup").disabled = false;
  try {
    setStatus("Calling…");
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const headers = {"Content-Type": "application/json"};
    const bearer = token();
    if (bearer) headers.Authorization = "Bearer " + bearer;
    const response = await fetch("/call/offer", {
      method: "POST",
      headers,
      body: JSON.stringify({sdp: pc.localDescription.sdp, type: "offer",
                            lead_name: $("lead-name").value.trim()}),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
    await pc.setRemoteDescription({type: "answer", sdp: body.sdp});
    document.body.dataset.callId = body.call_id;
    setStatus("Connected: call " + body.call_id);
  } catch (err) {
    finish("Call failed: " + err.message);
  }
}

function finish(text) {
  if (call) {
    clearInterval(call.statsTimer);
    call.mic.getTracks().forEach((track) => track.stop());
    call.pc.close();
    call = null;
  }
  $("call").disabled = false;
  $("hangup").disabled = true;
  setStatus(text);
}

function hangup() {
  if (call && call.channel.readyState === "open") {
    call.channel.send(JSON.stringify({type: "hangup"}));
  }
  // a moment for the message to leave before the connection goes
  setTimeout(() => finish("Hung up"), 200);
}

$("call").addEventListener("click", start);
$("hangup").addEventListener("click", hangup);
