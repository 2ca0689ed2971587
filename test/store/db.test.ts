import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { ForeignDatabaseError, LOOM_APPLICATION_ID, NewerSchemaError, SCHEMA_VERSION, Store, openDatabase } from '../../store/index.js';
import { tempDir } from '../helpers.js';

describe('store/db', () => {
  it('open - creates a Loom database with its application id, WAL and the latest schema', () => {
    const path = join(tempDir(), 'loom.db');
    let applied = -1;
    const db = openDatabase(path, { onMigrated: (n) => (applied = n) });
    expect(db.pragma('application_id', { simple: true })).toBe(LOOM_APPLICATION_ID);
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(db.pragma('busy_timeout', { simple: true })).toBeGreaterThan(0);
    expect(applied).toBe(SCHEMA_VERSION);
    db.close();
  });

  it('open - reopening an up-to-date database applies no migration', () => {
    const path = join(tempDir(), 'loom.db');
    openDatabase(path).close();
    let applied = -1;
    openDatabase(path, { onMigrated: (n) => (applied = n) }).close();
    expect(applied).toBe(0);
  });

  it('open - refuses a file that is not SQLite and leaves its bytes alone', () => {
    const path = join(tempDir(), 'notes.txt');
    writeFileSync(path, 'these are my notes, not a database\n'.repeat(20));
    const before = readFileSync(path);
    expect(() => openDatabase(path)).toThrow(ForeignDatabaseError);
    expect(() => openDatabase(path)).toThrow(/not a Loom database \(not a SQLite file\)/);
    expect(readFileSync(path).equals(before)).toBe(true);
  });

  it('open - refuses a SQLite file of another application and writes nothing to it', () => {
    const path = join(tempDir(), 'other.db');
    const other = new Database(path);
    other.exec('CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO accounts (name) VALUES (\'x\')');
    other.close();
    const before = readFileSync(path);
    expect(() => openDatabase(path)).toThrow(/holds tables of another application/);
    expect(readFileSync(path).equals(before)).toBe(true);
  });

  it('open - refuses a SQLite file with a foreign application id', () => {
    const path = join(tempDir(), 'other.db');
    const other = new Database(path);
    other.pragma('application_id = 1234');
    other.close();
    const before = readFileSync(path);
    expect(() => openDatabase(path)).toThrow(/application_id is 0x4d2/);
    expect(readFileSync(path).equals(before)).toBe(true);
  });

  it('open - refuses a Loom database from a newer schema', () => {
    const path = join(tempDir(), 'loom.db');
    const db = openDatabase(path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => openDatabase(path)).toThrow(NewerSchemaError);
    expect(() => Store.open(path)).toThrow(new RegExp(`schema version ${SCHEMA_VERSION + 1}, newer than this Loom knows`));
  });
});
