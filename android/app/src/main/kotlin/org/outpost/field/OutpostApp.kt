package org.outpost.field

import android.app.Application
import java.io.File
import org.outpost.core.Outpost

/** Opens the one core object for the process, over the encrypted database. */
class OutpostApp : Application() {
    val core: Outpost by lazy {
        Outpost.open(File(filesDir, "outpost.db").path, DatabaseKey.get(this))
    }

    override fun onCreate() {
        super.onCreate()
        SyncWorker.schedule(this)
    }
}
