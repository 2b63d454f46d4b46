// The web page of `torchedit serve`: upload (or the example), invert, edit with concepts or a
// target prompt, Imagic with its loss chart and an η slider, and the queue. Plain DOM, no
// framework; every URL is relative to the page, so the service may be mounted under a prefix.
// Job events arrive by fetch streaming (not EventSource), so a bearer token can be sent.

interface ApiError {
  code: string;
  message: string;
  option?: string;
}

interface Job {
  id: string;
  kind: string;
  state: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  position?: number;
  progress?: { phase: string; step: number; total: number; etaMs: number };
  result?: Record<string, unknown>;
  error?: ApiError;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} missing`);
  return element as T;
};

const state = {
  imageId: '',
  inversionId: '',
  reconstructionUrl: '',
  editJob: '',
  imagicJob: '',
};

// ---------------------------------------------------------------------------------------------
// Requests.

class RequestError extends Error {
  constructor(
    readonly status: number,
    readonly error: ApiError,
  ) {
    super(error.message);
  }
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const token = localStorage.getItem('torchedit-token');
  return token ? { ...extra, authorization: `Bearer ${token}` } : extra;
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: headers() };
  if (body instanceof Blob) {
    init.body = body;
    init.headers = headers({ 'content-type': body.type || 'application/octet-stream' });
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = headers({ 'content-type': 'application/json' });
  }
  const response = await fetch(path, init);
  const data = (await response.json().catch(() => ({}))) as { error?: ApiError } & T;
  if (!response.ok) {
    if (response.status === 401) $('token-box').hidden = false;
    throw new RequestError(response.status, data.error ?? { code: `HTTP_${response.status}`, message: response.statusText });
  }
  return data;
}

/** Images are fetched with the token and shown as object URLs. */
async function imageUrl(path: string): Promise<string> {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw new RequestError(response.status, { code: `HTTP_${response.status}`, message: `Cannot load ${path}` });
  return URL.createObjectURL(await response.blob());
}

const WORDS: Record<string, string> = {
  ERR_INVALID_OPTION: 'A setting is not valid',
  ERR_IMAGE_READ: 'The image cannot be read',
  ERR_TOO_LARGE: 'Too large',
  ERR_QUEUE_FULL: 'The server is busy',
  ERR_TOO_MANY_JOBS: 'You have too many jobs running',
  ERR_UNAUTHORIZED: 'A token is needed (top right)',
  ERR_ABORTED: 'Cancelled',
  ERR_TIMEOUT: 'The job took too long',
  ERR_SERVER_RESTARTED: 'The server restarted during the job',
  ERR_NOT_FOUND: 'Not found',
};

function showError(error: unknown): void {
  const box = $('error');
  if (error instanceof RequestError || (error as { error?: ApiError })?.error) {
    const e = (error as RequestError).error;
    box.textContent = `${WORDS[e.code] ?? 'Something went wrong'}: ${e.message} (${e.code})`;
  } else {
    box.textContent = `Something went wrong: ${(error as Error)?.message ?? String(error)}`;
  }
  box.hidden = false;
}

function clearError(): void {
  $('error').hidden = true;
}

/** Follows a job's server-sent events until it ends; resolves to the final record. */
async function follow(id: string, onEvent: (type: string, data: Record<string, unknown>) => void): Promise<Job> {
  const response = await fetch(`v1/jobs/${id}/events`, { headers: headers() });
  if (!response.ok || !response.body)
    throw new RequestError(response.status, { code: `HTTP_${response.status}`, message: 'Cannot follow the job' });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let last: Job | undefined;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf('\n\n');
      const type = /^event: (.+)$/m.exec(block)?.[1];
      const data = /^data: (.+)$/m.exec(block)?.[1];
      if (!type || !data) continue;
      const parsed = JSON.parse(data) as Record<string, unknown>;
      if (parsed.job) last = parsed.job as Job;
      onEvent(type, parsed);
    }
  }
  if (!last) throw new Error('The event stream ended without the job');
  return last;
}

// ---------------------------------------------------------------------------------------------
// Progress bars.

function progressBar(id: string) {
  const root = $(id);
  const bar = root.querySelector<HTMLElement>('.bar')!;
  const label = root.querySelector<HTMLElement>('.label')!;
  return {
    show(text: string, fraction = 0) {
      root.hidden = false;
      bar.style.width = `${Math.round(fraction * 100)}%`;
      label.textContent = text;
    },
    hide() {
      root.hidden = true;
    },
    /** Updates from a job event. */
    event(type: string, data: Record<string, unknown>) {
      if (type === 'queued' || type === 'position') this.show(`queued, position ${data.position as number}`);
      else if (type === 'running') this.show('starting…');
      else if (type === 'progress') {
        const p = data.progress as NonNullable<Job['progress']>;
        const eta = p.etaMs > 0 ? `, ${(p.etaMs / 1000).toFixed(1)} s left` : '';
        this.show(`${p.phase} ${p.step}/${p.total}${eta}`, p.step / p.total);
      } else if (type === 'done') this.show('done', 1);
      else if (type === 'failed' || type === 'cancelled') this.show(type);
    },
  };
}

/** Runs a job to its end with a progress bar; throws its error when it fails. */
async function runJob(job: Job, bar: ReturnType<typeof progressBar>): Promise<Job> {
  const final = await follow(job.id, (type, data) => bar.event(type, data));
  if (final.state === 'succeeded') return final;
  throw new RequestError(0, final.error ?? { code: 'ERR_INTERNAL', message: final.state });
}

// ---------------------------------------------------------------------------------------------
// Upload and inversion.

const invertBar = progressBar('invert-progress');

async function upload(blob: Blob): Promise<void> {
  clearError();
  try {
    const image = await request<{ id: string }>('POST', 'v1/images', blob);
    state.imageId = image.id;
    const original = $<HTMLImageElement>('original');
    original.src = await imageUrl(`v1/images/${image.id}`);
    original.hidden = false;
    $<HTMLButtonElement>('run-imagic').disabled = false;
    await invert();
  } catch (error) {
    showError(error);
  }
}

function numberOf(id: string): number | undefined {
  const value = $<HTMLInputElement>(id).value.trim();
  return value === '' ? undefined : Number(value);
}

async function invert(): Promise<void> {
  clearError();
  $<HTMLButtonElement>('run-edit').disabled = true;
  $<HTMLButtonElement>('reinvert').disabled = true;
  try {
    const body: Record<string, unknown> = { image: state.imageId, steps: numberOf('inv-steps'), seed: numberOf('inv-seed') };
    const prompt = $<HTMLInputElement>('source-prompt').value;
    if (prompt) body.sourcePrompt = prompt;
    const { job } = await request<{ job: Job }>('POST', 'v1/inversions', body);
    const done = await runJob(job, invertBar);
    state.inversionId = done.result!.inversionId as string;
    const reconstruction = $<HTMLImageElement>('reconstruction');
    state.reconstructionUrl = await imageUrl(done.result!.reconstructionUrl as string);
    reconstruction.src = state.reconstructionUrl;
    reconstruction.hidden = false;
    $<HTMLButtonElement>('run-edit').disabled = false;
  } catch (error) {
    showError(error);
  } finally {
    $<HTMLButtonElement>('reinvert').disabled = state.imageId === '';
  }
}

function setupDrop(): void {
  const drop = $('drop');
  drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    const file = event.dataTransfer?.files[0];
    if (file) void upload(file);
  });
  $<HTMLInputElement>('file').addEventListener('change', (event) => {
    const file = (event.target as HTMLInputElement).files?.[0];
    if (file) void upload(file);
  });
  $('use-example').addEventListener('click', async () => {
    const response = await fetch('web/example.png');
    await upload(await response.blob());
  });
  $('reinvert').addEventListener('click', () => void invert());
}

// ---------------------------------------------------------------------------------------------
// LEDITS edits.

const editBar = progressBar('edit-progress');

function addConcept(prompt = '', sign = '+'): void {
  const template = $<HTMLTemplateElement>('concept-row');
  const row = template.content.firstElementChild!.cloneNode(true) as HTMLElement;
  row.querySelector<HTMLInputElement>('.prompt')!.value = prompt;
  row.querySelector<HTMLSelectElement>('.sign')!.value = sign;
  row.querySelector('.remove')!.addEventListener('click', () => row.remove());
  $('concepts').append(row);
}

function concepts(): Record<string, unknown>[] {
  return [...document.querySelectorAll<HTMLElement>('#concepts .concept')].flatMap((row) => {
    const prompt = row.querySelector<HTMLInputElement>('.prompt')!.value.trim();
    if (prompt === '') return [];
    const concept: Record<string, unknown> = { prompt };
    if (row.querySelector<HTMLSelectElement>('.sign')!.value === '-') concept.remove = true;
    for (const key of ['scale', 'threshold', 'warmup']) {
      const value = row.querySelector<HTMLInputElement>(`.${key}`)!.value.trim();
      if (value !== '') concept[key] = Number(value);
    }
    return [concept];
  });
}

async function runEdit(): Promise<void> {
  clearError();
  const run = $<HTMLButtonElement>('run-edit');
  const cancel = $<HTMLButtonElement>('cancel-edit');
  run.disabled = true;
  try {
    const body: Record<string, unknown> = { concepts: concepts(), skip: Number($<HTMLInputElement>('skip').value) };
    const target = $<HTMLInputElement>('target-prompt').value.trim();
    if (target) body.targetPrompt = target;
    const guidance = numberOf('guidance');
    if (guidance !== undefined) body.guidanceScale = guidance;
    const { job } = await request<{ job: Job }>('POST', `v1/inversions/${state.inversionId}/edits`, body);
    state.editJob = job.id;
    cancel.hidden = false;
    const done = await runJob(job, editBar);
    const url = done.result!.url as string;
    $<HTMLImageElement>('before').src = state.reconstructionUrl;
    $<HTMLImageElement>('after').src = await imageUrl(url);
    $('compare').hidden = false;
    $('compare-captions').hidden = false;
    const base = url.replace(/\.png$/, '');
    $<HTMLAnchorElement>('dl-png').href = `${base}.png?download`;
    $<HTMLAnchorElement>('dl-webp').href = `${base}.webp?download`;
    $<HTMLAnchorElement>('dl-jpg').href = `${base}.jpg?download`;
    $('downloads').hidden = false;
  } catch (error) {
    showError(error);
  } finally {
    cancel.hidden = true;
    state.editJob = '';
    run.disabled = state.inversionId === '';
  }
}

async function cancelJob(id: string): Promise<void> {
  if (!id) return;
  try {
    await request('DELETE', `v1/jobs/${id}`);
  } catch (error) {
    showError(error);
  }
}

function setupEdit(): void {
  addConcept('blue');
  $('add-concept').addEventListener('click', () => addConcept());
  $('run-edit').addEventListener('click', () => void runEdit());
  $('cancel-edit').addEventListener('click', () => void cancelJob(state.editJob));
  const skip = $<HTMLInputElement>('skip');
  skip.addEventListener('input', () => {
    $('skip-value').textContent = skip.value;
  });
  const slider = $<HTMLInputElement>('compare-slider');
  slider.addEventListener('input', () => {
    $('after-clip').style.clipPath = `inset(0 0 0 ${slider.value}%)`;
  });
}

// ---------------------------------------------------------------------------------------------
// Imagic.

const imagicBar = progressBar('imagic-progress');
const ETAS = [0, 0.4, 0.8, 1, 1.2, 1.6];

function drawLosses(losses: { embedding: number[]; finetune: number[] }): void {
  const canvas = $<HTMLCanvasElement>('loss-chart');
  canvas.hidden = false;
  const g = canvas.getContext('2d')!;
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  const all = [...losses.embedding, ...losses.finetune];
  const max = Math.max(...all);
  const min = Math.min(...all);
  const x = (i: number) => 30 + (i / Math.max(1, all.length - 1)) * (width - 40);
  const y = (v: number) => height - 20 - ((v - min) / (max - min || 1)) * (height - 35);
  g.fillStyle = '#6b7078';
  g.font = '11px system-ui';
  g.fillText(`loss ${max.toPrecision(3)}`, 2, 12);
  g.fillText(min.toPrecision(3), 2, height - 22);
  g.fillText('embedding', x(0), height - 5);
  g.fillText('fine-tune', x(losses.embedding.length), height - 5);
  for (const [from, values, color] of [
    [0, losses.embedding, '#2457d6'],
    [losses.embedding.length, losses.finetune, '#d67a24'],
  ] as const) {
    g.strokeStyle = color;
    g.beginPath();
    values.forEach((v, i) => (i === 0 ? g.moveTo(x(from + i), y(v)) : g.lineTo(x(from + i), y(v))));
    g.stroke();
  }
}

async function runImagic(): Promise<void> {
  clearError();
  const run = $<HTMLButtonElement>('run-imagic');
  const cancel = $<HTMLButtonElement>('cancel-imagic');
  run.disabled = true;
  try {
    const body: Record<string, unknown> = { image: state.imageId, targetPrompt: $<HTMLInputElement>('imagic-prompt').value };
    const embedding = numberOf('imagic-embedding');
    const finetune = numberOf('imagic-finetune');
    if (embedding !== undefined) body.embedding = { steps: embedding };
    if (finetune !== undefined) body.finetune = { steps: finetune };
    const { job } = await request<{ job: Job }>('POST', 'v1/imagic', body);
    state.imagicJob = job.id;
    cancel.hidden = false;
    const trained = await runJob(job, imagicBar);
    drawLosses(trained.result!.losses as { embedding: number[]; finetune: number[] });
    const sampling: Record<string, unknown> = { etas: ETAS, seed: 0 };
    const steps = numberOf('imagic-steps');
    if (steps !== undefined) sampling.steps = steps;
    const sweep = await request<{ job: Job }>('POST', `v1/imagic/${trained.result!.imagicId as string}/generate`, sampling);
    state.imagicJob = sweep.job.id;
    const swept = await runJob(sweep.job, imagicBar);
    const results = swept.result!.results as { url: string; eta: number }[];
    const urls = await Promise.all(results.map((r) => imageUrl(r.url)));
    const slider = $<HTMLInputElement>('eta');
    slider.max = String(results.length - 1);
    const show = () => {
      const i = Number(slider.value);
      $<HTMLImageElement>('sweep-image').src = urls[i];
      $('eta-value').textContent = `${results[i].eta}`;
    };
    slider.value = String(results.findIndex((r) => r.eta === 1));
    slider.oninput = show;
    show();
    $('sweep').hidden = false;
  } catch (error) {
    showError(error);
  } finally {
    cancel.hidden = true;
    state.imagicJob = '';
    run.disabled = state.imageId === '';
  }
}

// ---------------------------------------------------------------------------------------------
// Queue, tabs, start.

async function refreshQueue(): Promise<void> {
  if ($('panel-queue').hidden) return;
  try {
    const { jobs } = await request<{ jobs: Job[] }>('GET', 'v1/jobs?limit=30');
    const body = $('jobs');
    body.replaceChildren(
      ...jobs.map((job) => {
        const row = document.createElement('tr');
        const progress =
          job.state === 'queued'
            ? `position ${job.position ?? '?'}`
            : job.progress
              ? `${job.progress.step}/${job.progress.total}`
              : (job.error?.message ?? '');
        for (const text of [job.id.slice(0, 8), job.kind, job.state, progress]) {
          const cell = document.createElement('td');
          cell.textContent = text;
          row.append(cell);
        }
        const cell = document.createElement('td');
        if (job.state === 'queued' || job.state === 'running') {
          const button = document.createElement('button');
          button.textContent = 'Cancel';
          button.addEventListener('click', () => void cancelJob(job.id).then(refreshQueue));
          cell.append(button);
        }
        row.append(cell);
        return row;
      }),
    );
  } catch (error) {
    showError(error);
  }
}

function setupTabs(): void {
  const tabs = [...document.querySelectorAll<HTMLButtonElement>('[role="tab"]')];
  for (const tab of tabs) {
    tab.addEventListener('click', () => {
      for (const other of tabs) {
        other.setAttribute('aria-selected', String(other === tab));
        $(other.dataset.panel!).hidden = other !== tab;
      }
      void refreshQueue();
    });
  }
  setInterval(() => void refreshQueue(), 1500);
}

async function start(): Promise<void> {
  const token = $<HTMLInputElement>('token');
  token.value = localStorage.getItem('torchedit-token') ?? '';
  token.addEventListener('change', () => localStorage.setItem('torchedit-token', token.value));
  setupDrop();
  setupEdit();
  setupTabs();
  $('run-imagic').addEventListener('click', () => void runImagic());
  $('cancel-imagic').addEventListener('click', () => void cancelJob(state.imagicJob));
  try {
    const { models } = await request<{
      models: { name: string; default: boolean; defaults: { inversion: { steps: number }; edit: { skipFraction: number } } }[];
    }>('GET', 'v1/models');
    const model = models.find((m) => m.default) ?? models[0];
    $('model-name').textContent = `model: ${model.name}`;
    $<HTMLInputElement>('inv-steps').value = String(model.defaults.inversion.steps);
    $<HTMLInputElement>('skip').value = String(model.defaults.edit.skipFraction);
    $('skip-value').textContent = String(model.defaults.edit.skipFraction);
  } catch (error) {
    showError(error);
  }
}

void start();
