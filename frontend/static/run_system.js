// The run page's record of how the run was made (RunInfo.environment, data_sha256) and what its latest epoch
// cost the machine (EpochRecord.system): both filled by the server at first, then kept live from the stream.

const bytes = (n) => (n == null ? "—" : n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(1)} MB`);

function set(field, text) {
  const element = document.querySelector(`[data-field="${field}"]`);
  if (element) element.textContent = text;
}

export function showSystem(record) {
  const card = document.getElementById("run-system");
  if (!card || !record) return;
  const system = record.system;
  set("system-epoch", String(record.epoch));
  set("system-images", `${Math.round(record.images_per_s).toLocaleString("en-US")} images/s`);
  set("system-rss", bytes(system?.rss_bytes));
  set("system-cpu", system ? `${system.cpu_seconds.toFixed(2)} s` : "—");
  set("system-gpu-allocated", bytes(system?.gpu_allocated_bytes));
  set("system-gpu-reserved", bytes(system?.gpu_reserved_bytes));
  set("system-gpu-util", system?.gpu_utilization == null ? "—" : `${system.gpu_utilization.toFixed(0)} %`);
  card.hidden = false;
}

export function showMade(info) {
  const card = document.getElementById("run-made");
  const env = info?.environment;
  if (!card || !env) return;
  set("made-trainboard", env.git_commit ? `${env.trainboard} (${env.git_commit.slice(0, 12)})` : env.trainboard);
  set("made-python", env.python);
  set("made-torch", `${env.torch} / ${env.torchvision}`);
  set("made-cuda", env.cuda ? `${env.cuda} / cuDNN ${env.cudnn ?? "—"}` : "—");
  set("made-device", env.device_memory_bytes ? `${env.device_name} (${bytes(env.device_memory_bytes)})` : env.device_name);
  set("made-host", env.host);
  set("made-data", info.data_sha256 ?? "—");
  card.hidden = false;
}
