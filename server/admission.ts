/**
 * Admission over HTTP is the same function the CLI uses (store/admission.ts): an explicit mode is
 * used as given; without one, an idle session gets `queue` and a busy session its double-texting
 * policy (steer, queue, interrupt: cancel then run, reject: `SessionBusyError`, mapped to 409
 * naming `body.mode` in server/errors.ts). A missing session is `SessionNotFoundError` (404).
 */
export { admitWithPolicy, type Admission, type AdmitWithPolicyRequest as AdmitRequest } from '../store/admission.js';
