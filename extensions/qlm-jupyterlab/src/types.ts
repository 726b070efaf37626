/** JSON shapes answered by the QLM server extension (qlm_jupyterlab/views.py). */

export type JSONValue =
  | string
  | number
  | boolean
  | null
  | JSONValue[]
  | { [key: string]: JSONValue };

export type JSONObject = { [key: string]: JSONValue };

export interface IQLMErrorRecord {
  type: string;
  code: string;
  message: string;
  hint?: string | null;
  context?: JSONObject;
  traceback?: string;
}

export interface IStatus {
  qlm_home: string;
  db_path: string;
  db_exists: boolean;
  version: string;
  poll_seconds: number;
}

export interface IJob {
  id: string;
  kind: string | null;
  status: string;
  done: number;
  total: number | null;
  progress: number;
  strategy: string | null;
  method: string | null;
  objective: string | null;
  best: { params?: JSONObject; value?: number | null } | null;
  error: IQLMErrorRecord | null;
  cancel_requested: boolean;
  /** Pending/running but its owner sent no heartbeat for too long (about to be marked abandoned). */
  stale: boolean;
  /** Failed, cancelled or abandoned (its process died): qlm.optimize.resume(id) finishes it. */
  resumable?: boolean;
  pid?: number | null;
  host?: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

export interface IRun {
  id: number;
  strategy: string;
  strategy_version_id: number | null;
  status: string;
  dataset: string | null;
  params: JSONObject;
  stats: { [key: string]: number | string | null };
  duration_s: number | null;
  source: string | null;
  created_at: string;
  has_report: boolean;
  error: Partial<IQLMErrorRecord> | null;
  settings?: JSONObject;
}

export interface IHealSession {
  id: string;
  strategy: string;
  path: string | null;
  status: string;
  healed: boolean;
  attempts: number;
  max_attempts: number;
  model: string | null;
  original_version_id: number | null;
  final_version_id: number | null;
  created_at: string;
  finished_at: string | null;
  diagnosis?: JSONValue;
  error?: JSONValue;
  steps?: IHealStep[];
}

export interface IHealStep {
  id: number;
  index: number;
  attempt: number;
  kind: string;
  ok: boolean | null;
  started_at: string;
  ended_at: string;
  duration_s: number;
  strategy_version_id: number | null;
  data: JSONValue;
}

export interface IQLMEvent {
  id: number;
  topic: string;
  payload: JSONValue;
  source: string | null;
  created_at: string;
  time: number;
}

export interface IMCPServer {
  transport: string;
  url: string | null;
  status: string;
  started_at?: number;
  stopped_at?: number;
  reason?: string;
  reachable: boolean | null;
  config: { [form: string]: JSONObject };
}

export interface IMCPClient {
  client: string;
  version: string;
  transport: string;
  connected_at: number;
  protocol: string | null;
}

export interface IMCPStatus {
  servers: IMCPServer[];
  clients: IMCPClient[];
  tool_calls: number;
  tool_failures: number;
  last_tool_call: { tool: string; time: number } | null;
  recently_active: boolean;
  stdio_config: JSONObject;
}
