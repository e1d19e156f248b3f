import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { NO_PRETENURING, turnOffPretenuring } from '../src/runtime/v8-settings';

describe('V8 settings of the server', () => {
  const applied = (execArgv: string[]): string[] => {
    const flags: string[] = [];
    turnOffPretenuring(execArgv, (f) => flags.push(f));
    return flags;
  };

  it('turns allocation-site pretenuring off when the command line says nothing of it', () => {
    expect(applied([])).to.deep.equal(['--no-allocation-site-pretenuring']);
    expect(applied(['--max-old-space-size=512', '--enable-source-maps'])).to.deep.equal([NO_PRETENURING]);
  });

  it('leaves the choice to the command line, in any spelling V8 accepts', () => {
    for (const arg of ['--allocation-site-pretenuring', '--no-allocation-site-pretenuring', '--noallocation-site-pretenuring', '--allocation_site_pretenuring', '--no-allocation_site_pretenuring']) {
      expect(applied(['--enable-source-maps', arg]), arg).to.deep.equal([]);
    }
  });

  it('does not mistake a longer flag for this one', () => {
    expect(applied(['--allocation-site-pretenuring-statistics'])).to.deep.equal([NO_PRETENURING]);
  });

  it('names a flag the V8 of this Node knows (setting an unknown one would do nothing, silently)', () => {
    const options = spawnSync(process.execPath, ['--v8-options'], { encoding: 'utf8' }).stdout;
    expect(options).to.match(/^\s*--allocation-site-pretenuring \(/m);
    expect(NO_PRETENURING).to.equal('--no-allocation-site-pretenuring');
  });
});
